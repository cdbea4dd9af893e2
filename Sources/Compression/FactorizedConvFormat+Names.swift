extension FactorizedConvFormat {
    /// The conv form of an FC format (METHODS §1): svd → `svdChannel`, cp → `cp` [12], tucker → `tucker2` [9],
    /// tt → `tensorTrain` [38], tr → `tensorRing` [14], ht → `hierarchicalTucker`, btd → `blockTerm` [39],
    /// kpd → `gkpd` [36], str → `semiTensorRing` [37]; nil for stt, which has no conv form here.
    public init?(_ format: FactorizedFormat) {
        switch format {
        case .svd: self = .svdChannel
        case .cp: self = .cp
        case .tucker: self = .tucker2
        case .tensorTrain: self = .tensorTrain
        case .tensorRing: self = .tensorRing
        case .hierarchicalTucker: self = .hierarchicalTucker
        case .blockTerm: self = .blockTerm
        case .kronecker: self = .gkpd
        case .semiTensorRing: self = .semiTensorRing
        case .semiTensorTrain: return nil
        }
    }

    /// The format named by `name`, case-insensitive: a case name or a short name (`shortName`; the FC short names
    /// svd, tucker and kpd name the conv forms above).
    public init?(name: String) {
        let key = name.lowercased()
        if let format = FactorizedConvFormat.allCases.first(where: { $0.rawValue.lowercased() == key || $0.shortName == key }) {
            self = format
        } else if let format = FactorizedFormat(name: key).flatMap(FactorizedConvFormat.init) {
            self = format
        } else {
            return nil
        }
    }

    /// The short name: svd-channel, svd-spatial, cp, tucker2, tt, tr, ht, btd, gkpd, str.
    public var shortName: String {
        switch self {
        case .svdChannel: return "svd-channel"
        case .svdSpatial: return "svd-spatial"
        case .cp: return "cp"
        case .tucker2: return "tucker2"
        case .tensorTrain: return "tt"
        case .tensorRing: return "tr"
        case .hierarchicalTucker: return "ht"
        case .blockTerm: return "btd"
        case .gkpd: return "gkpd"
        case .semiTensorRing: return "str"
        }
    }
}

extension FactorizedConvFormat: CustomStringConvertible {
    /// The short name (messages name formats the way users type them).
    public var description: String { shortName }
}
