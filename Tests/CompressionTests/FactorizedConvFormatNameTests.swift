import Compression
import Testing

@Suite struct FactorizedConvFormatNameTests {
    /// Every FC format with a conv form maps to it; stt has none.
    @Test func fcFormatsMapToTheirConvForms() {
        let expected: [FactorizedFormat: FactorizedConvFormat?] = [
            .svd: .svdChannel, .cp: .cp, .tucker: .tucker2, .tensorTrain: .tensorTrain, .tensorRing: .tensorRing,
            .hierarchicalTucker: .hierarchicalTucker, .blockTerm: .blockTerm, .kronecker: .gkpd,
            .semiTensorTrain: nil, .semiTensorRing: .semiTensorRing,
        ]
        #expect(expected.count == FactorizedFormat.allCases.count)
        for format in FactorizedFormat.allCases {
            #expect(FactorizedConvFormat(format) == expected[format]!, "\(format)")
        }
    }

    /// Short names, case names and the FC short names parse, case-insensitively; others do not.
    @Test func namesParse() {
        for format in FactorizedConvFormat.allCases {
            #expect(FactorizedConvFormat(name: format.shortName) == format)
            #expect(FactorizedConvFormat(name: format.rawValue.uppercased()) == format)
        }
        let names: [String: FactorizedConvFormat] = ["tt": .tensorTrain, "tr": .tensorRing, "cp": .cp, "tucker": .tucker2,
                                                     "svd": .svdChannel, "ht": .hierarchicalTucker, "btd": .blockTerm,
                                                     "gkpd": .gkpd, "kpd": .gkpd, "TT": .tensorTrain, "str": .semiTensorRing]
        for (name, format) in names { #expect(FactorizedConvFormat(name: name) == format, "\(name)") }
        for name in ["stt", "tensor", ""] { #expect(FactorizedConvFormat(name: name) == nil, "\(name)") }
    }
}
