/// Per-operation energies and the inference-energy model of METHODS §8 (derived; default values from [159],
/// 45 nm, 0.9 V, fp32; the DRAM entry as tabulated from the same source in [102]).
///
///     E = MACs·(E_mult + E_add) + N_W·E_mem(level_W) + (N_in + N_out + 2·N_int)·E_mem(level_A)
///
/// Weights are read once per forward pass (amortized over the batch), from on-chip memory when the whole model's
/// weights fit in `onChipCapacityBytes`, else from DRAM. Each activation tensor (the input, the output, and every
/// intermediate, written once and read once) is charged at the level its own size fits.
public struct EnergyModel: Sendable, Equatable {
    /// Picojoules per multiply (32-bit float: 3.7).
    public var multiply: Double
    /// Picojoules per add (32-bit float: 0.9).
    public var add: Double
    /// Picojoules per scalar access on chip (32-bit load from an 8 kB SRAM cache: 5).
    public var onChipAccess: Double
    /// Picojoules per scalar access to DRAM (32-bit: 640).
    public var offChipAccess: Double
    /// On-chip capacity C_on in bytes (default 1 MiB).
    public var onChipCapacityBytes: Int
    /// Bytes per stored scalar (4 for fp32).
    public var bytesPerScalar: Int

    /// A model with the given energies (defaults: fp32 values of METHODS §8.2).
    public init(multiply: Double = 3.7, add: Double = 0.9, onChipAccess: Double = 5, offChipAccess: Double = 640,
                onChipCapacityBytes: Int = 1 << 20, bytesPerScalar: Int = 4) {
        self.multiply = multiply
        self.add = add
        self.onChipAccess = onChipAccess
        self.offChipAccess = offChipAccess
        self.onChipCapacityBytes = onChipCapacityBytes
        self.bytesPerScalar = bytesPerScalar
    }

    /// The fp32 defaults of METHODS §8.2.
    public static let float32 = EnergyModel()

    /// Whether a tensor of `elements` scalars fits on chip.
    public func fitsOnChip(elements: Int) -> Bool { elements * bytesPerScalar <= onChipCapacityBytes }

    /// Picojoules to access every scalar of a tensor of `elements` scalars once, at the level its size fits.
    public func access(elements: Int) -> Double {
        Double(elements) * (fitsOnChip(elements: elements) ? onChipAccess : offChipAccess)
    }

    /// E for one forward pass: `macs` multiply-adds, `weights` parameters read from on-chip memory when
    /// `weightsOnChip`, the input and output written/read once, and every intermediate written and read once.
    public func estimate(macs: Int, weights: Int, weightsOnChip: Bool, input: Int, output: Int,
                         intermediates: [Int]) -> EnergyEstimate {
        let compute = Double(macs) * (multiply + add)
        var memory = Double(weights) * (weightsOnChip ? onChipAccess : offChipAccess)
        memory += access(elements: input) + access(elements: output)
        for size in intermediates { memory += 2 * access(elements: size) }
        return EnergyEstimate(computePicojoules: compute, memoryPicojoules: memory)
    }
}

/// An energy estimate split into arithmetic and data movement (METHODS §8.3).
public struct EnergyEstimate: Sendable, Equatable {
    /// MACs·(E_mult + E_add), in picojoules.
    public var computePicojoules: Double
    /// Weight, activation and intermediate accesses, in picojoules.
    public var memoryPicojoules: Double
    /// compute + memory, in picojoules.
    public var totalPicojoules: Double { computePicojoules + memoryPicojoules }

    /// An estimate with the given parts.
    public init(computePicojoules: Double, memoryPicojoules: Double) {
        self.computePicojoules = computePicojoules
        self.memoryPicojoules = memoryPicojoules
    }

    /// The sum of two estimates.
    public static func + (lhs: EnergyEstimate, rhs: EnergyEstimate) -> EnergyEstimate {
        EnergyEstimate(computePicojoules: lhs.computePicojoules + rhs.computePicojoules,
                       memoryPicojoules: lhs.memoryPicojoules + rhs.memoryPicojoules)
    }

    /// Both parts divided by `divisor` (per image from per batch).
    public func divided(by divisor: Int) -> EnergyEstimate {
        EnergyEstimate(computePicojoules: computePicojoules / Double(divisor), memoryPicojoules: memoryPicojoules / Double(divisor))
    }
}
