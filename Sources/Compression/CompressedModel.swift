import Foundation
import NeuralNetworks
import TensorCore

/// The architecture record of a compressed model: the dense model's record (`ModelArchitecture`'s keys) plus one
/// `FactorizedLayerRecord` per replaced layer under `"compression"`. Stored as JSON in the checkpoint's
/// `lowrank.architecture` metadata, so `ModelArchitecture(json:)` still reads the base model from it.
public struct CompressedArchitecture: Codable, Equatable, Sendable {
    /// The dense model the compressed one was made from.
    public var base: ModelArchitecture
    /// The replaced layers, in forward order.
    public var layers: [FactorizedLayerRecord]

    /// A record.
    public init(base: ModelArchitecture, layers: [FactorizedLayerRecord]) {
        self.base = base
        self.layers = layers
    }

    enum CodingKeys: String, CodingKey { case compression }

    public init(from decoder: any Decoder) throws {
        base = try ModelArchitecture(from: decoder)
        layers = try decoder.container(keyedBy: CodingKeys.self).decodeIfPresent([FactorizedLayerRecord].self,
                                                                                  forKey: .compression) ?? []
    }

    public func encode(to encoder: any Encoder) throws {
        try base.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(layers, forKey: .compression)
    }

    /// The record as one line of JSON with sorted keys.
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }

    /// Reads a record (a dense model's record gives no compressed layers).
    ///
    /// - Throws: `ModelError.invalidArchitecture` when the JSON is not a LowRank model record.
    public init(json: String) throws {
        do {
            self = try JSONDecoder().decode(CompressedArchitecture.self, from: Data(json.utf8))
        } catch {
            throw ModelError.invalidArchitecture("the architecture record \(json) is not a LowRank model record "
                                                 + "(it needs \"model\", \"input_shape\" and \"classes\"; \(error))")
        }
    }

    /// Builds the model the record describes: the dense model, with each recorded layer replaced by a factorized
    /// one with placeholder cores (restore a checkpoint into it next).
    ///
    /// - Throws: `ModelError` for the base record; `CompressionError` for a layer record that does not fit.
    public func makeModel<Scalar: TensorScalar>(as type: Scalar.Type = Scalar.self) throws -> any ShapedLayer<Scalar> {
        let model: any ShapedLayer<Scalar> = try ModelRegistry.make(base, seed: 0)
        for record in layers {
            try ModelSurgery.replace(layerNamed: record.name, in: model, inputShape: base.inputShape,
                                     with: try LayerCompressor.rebuild(record, as: Scalar.self))
        }
        return model
    }
}

/// Loading dense and compressed checkpoints alike.
public enum CompressedModel {
    /// The model of a LowRank checkpoint (dense or compressed), with its weights restored, and its record.
    ///
    /// - Throws: `CheckpointError.notACheckpoint` for a safetensors file without the LowRank marker (and the other
    ///   `Checkpoint` errors); `ModelError` / `CompressionError` for a record that does not describe a model.
    public static func load<Scalar: TensorScalar>(_ path: String, as type: Scalar.Type = Scalar.self) throws
        -> (model: any ShapedLayer<Scalar>, architecture: CompressedArchitecture, checkpoint: Checkpoint)
    {
        let checkpoint = try Checkpoint(contentsOf: path)
        let architecture = try CompressedArchitecture(json: checkpoint.architecture)
        // A record with compressed layers (the pre-train path) rebuilds them; otherwise the record is a dense or a
        // tensorized (pre-set) model, which `TensorizedModel` rebuilds.
        let model: any ShapedLayer<Scalar> = architecture.layers.isEmpty
            ? try TensorizedModel.build(architectureJSON: checkpoint.architecture, seed: 0, as: Scalar.self).model
            : try architecture.makeModel()
        try checkpoint.restore(into: model)
        return (model, architecture, checkpoint)
    }
}
