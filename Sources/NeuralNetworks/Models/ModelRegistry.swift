import Autodiff
import Foundation
import TensorCore

/// What a checkpoint records to rebuild a model: the registry name, the per-sample input shape and the number
/// of classes. Stored as the JSON object `{"classes":10,"input_shape":[28,28,1],"model":"fmnist-cnn"}` in the
/// checkpoint's `lowrank.architecture` metadata.
public struct ModelArchitecture: Codable, Equatable, Sendable {
    /// The registry name (`fmnist-cnn`, `lenet5`, `resnet20`, `resnet32`, `resnet56`).
    public var model: String
    /// The per-sample input shape `[H, W, C]` (NHWC without the batch axis).
    public var inputShape: [Int]
    /// The number of output classes.
    public var classes: Int

    enum CodingKeys: String, CodingKey {
        case model
        case inputShape = "input_shape"
        case classes
    }

    /// An architecture record.
    public init(model: String, inputShape: [Int], classes: Int) {
        self.model = model
        self.inputShape = inputShape
        self.classes = classes
    }

    /// The record as a one-line JSON object with sorted keys.
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }

    /// Reads a record from JSON (extra keys are ignored).
    ///
    /// - Throws: `ModelError.invalidArchitecture` when the JSON lacks a field or a field has the wrong type.
    public init(json: String) throws {
        do {
            self = try JSONDecoder().decode(ModelArchitecture.self, from: Data(json.utf8))
        } catch {
            throw ModelError.invalidArchitecture("the architecture record \(json) is not a LowRank model record "
                                                 + "(it needs \"model\", \"input_shape\" and \"classes\")")
        }
    }
}

/// Errors of building a model from a name or an architecture record.
public enum ModelError: Error, CustomStringConvertible, Equatable, Sendable {
    /// No model of that name is registered.
    case unknownModel(String)
    /// The record cannot describe a model (missing fields, an input shape the model cannot take).
    case invalidArchitecture(String)

    /// The one-line message for a user.
    public var description: String {
        switch self {
        case let .unknownModel(name):
            return "unknown model '\(name)'; the models are " + ModelRegistry.modelNames.joined(separator: ", ")
        case let .invalidArchitecture(problem):
            return "invalid model architecture: \(problem)"
        }
    }
}

/// The reference models by name: constructors and their architecture records.
///
/// ```swift
/// let architecture = ModelArchitecture(model: "fmnist-cnn", inputShape: [28, 28, 1], classes: 10)
/// let model: any ShapedLayer<Float> = try ModelRegistry.make(architecture, seed: 0)
/// ```
public enum ModelRegistry {
    /// The registered names.
    public static let modelNames = ["fmnist-cnn", "lenet5", "resnet20", "resnet32", "resnet56"]

    /// A one-line description of each model, for help texts.
    public static func summary(of name: String) -> String? {
        switch name {
        case "fmnist-cnn": return "4 conv3×3 + BN + ReLU, 2 max pools, 2 linear layers (the PyTorch peer's network)"
        case "lenet5": return "LeNet-5 with ReLU and max pooling"
        case "resnet20", "resnet32", "resnet56": return "CIFAR-style ResNet-\(name.dropFirst(6)) (16/32/64 channels)"
        default: return nil
        }
    }

    /// Builds the model an architecture record describes, its weights initialized from `seed`.
    ///
    /// The same record and seed give the same initial weights (in `Float` and `Double` up to rounding).
    ///
    /// - Throws: `ModelError.unknownModel` for an unregistered name; `.invalidArchitecture` for an input shape or
    ///   class count the model cannot take (the message says which shapes it accepts).
    public static func make<Scalar: TensorScalar>(_ architecture: ModelArchitecture, seed: UInt64,
                                                  as type: Scalar.Type = Scalar.self) throws -> any ShapedLayer<Scalar> {
        let shape = architecture.inputShape, classes = architecture.classes
        guard modelNames.contains(architecture.model) else { throw ModelError.unknownModel(architecture.model) }
        guard shape.count == 3, shape.allSatisfy({ $0 > 0 }), classes > 0 else {
            throw ModelError.invalidArchitecture("input shape \(shape) must be [height, width, channels] with positive "
                                                 + "sizes and classes (\(classes)) positive")
        }
        var generator = SeededGenerator(seed: mixSeeds(seed, initializationStream))
        switch architecture.model {
        case "fmnist-cnn":
            guard shape[0] % 4 == 0, shape[1] % 4 == 0 else {
                throw ModelError.invalidArchitecture("fmnist-cnn needs height and width divisible by 4 (two 2×2 "
                                                     + "max pools), got \(shape)")
            }
            return FashionCNN.make(inputShape: shape, classes: classes, generator: &generator) as Sequential<Scalar>
        case "lenet5":
            guard shape[0] == shape[1], shape[0] % 2 == 0, (8...32).contains(shape[0]) else {
                throw ModelError.invalidArchitecture("lenet5 needs square images of even side between 8 and 32 "
                                                     + "pixels (28×28 or 32×32), got \(shape)")
            }
            return LeNet5.make(inputShape: shape, classes: classes, generator: &generator) as Sequential<Scalar>
        default:
            let depth = Int(architecture.model.dropFirst("resnet".count))!
            guard shape[0] >= 4, shape[1] >= 4 else {
                throw ModelError.invalidArchitecture("\(architecture.model) needs images of at least 4×4 pixels, got \(shape)")
            }
            return ResNet<Scalar>(depth: depth, inputChannels: shape[2], classes: classes, generator: &generator)
        }
    }

    /// Builds the model named `name` for `inputShape` images and `classes` classes; returns it with its record.
    ///
    /// - Throws: as `make(_:seed:as:)`.
    public static func make<Scalar: TensorScalar>(named name: String, inputShape: [Int], classes: Int, seed: UInt64,
                                                  as type: Scalar.Type = Scalar.self) throws
        -> (model: any ShapedLayer<Scalar>, architecture: ModelArchitecture)
    {
        let architecture = ModelArchitecture(model: name, inputShape: inputShape, classes: classes)
        return (try make(architecture, seed: seed, as: type), architecture)
    }
}

private let initializationStream: UInt64 = 0x494E_4954_5745_4947  // "INITWEIG"
