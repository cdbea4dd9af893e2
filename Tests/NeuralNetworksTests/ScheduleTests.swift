import Foundation
import NeuralNetworks
import Testing

@Suite struct ScheduleTests {
    @Test func constantIsConstant() {
        let schedule = LearningRateSchedule.constant(0.05)
        for step in [0, 1, 999, 1_000_000] { #expect(schedule.learningRate(atStep: step) == 0.05) }
    }

    @Test func stepDecayChangesExactlyAtMultiplesOfTheStepSize() {
        // γ = 1/2 keeps every value exact in binary.
        let schedule = LearningRateSchedule.stepDecay(initial: 0.75, stepSize: 10, gamma: 0.5)
        #expect(schedule.learningRate(atStep: 0) == 0.75)
        #expect(schedule.learningRate(atStep: 9) == 0.75)
        #expect(schedule.learningRate(atStep: 10) == 0.375)
        #expect(schedule.learningRate(atStep: 19) == 0.375)
        #expect(schedule.learningRate(atStep: 20) == 0.1875)
        #expect(schedule.learningRate(atStep: 35) == 0.75 / 8)
        // γ = 0.1: lr = 0.1 · 0.1ⁿ up to rounding.
        let tenfold = LearningRateSchedule.stepDecay(initial: 0.1, stepSize: 3, gamma: 0.1)
        for n in 0..<4 {
            let expected = 0.1 * pow(0.1, Double(n))
            for step in (3 * n)..<(3 * n + 3) {
                #expect(abs(tenfold.learningRate(atStep: step) - expected) <= 4 * Double.ulpOfOne * expected)
            }
        }
    }

    @Test func stepDecayByEpochsFoldsInTheEpochLength() {
        let schedule = LearningRateSchedule.stepDecay(initial: 1, everyEpochs: 2, stepsPerEpoch: 7, gamma: 0.5)
        #expect(schedule == .stepDecay(initial: 1, stepSize: 14, gamma: 0.5))
        #expect(schedule.learningRate(epoch: 1, stepInEpoch: 6, stepsPerEpoch: 7) == 1)
        #expect(schedule.learningRate(epoch: 2, stepInEpoch: 0, stepsPerEpoch: 7) == 0.5)
        #expect(schedule.learningRate(epoch: 4, stepInEpoch: 3, stepsPerEpoch: 7) == 0.25)
    }

    @Test func cosineHitsItsEndpointsAndMidpoint() {
        let initial = 0.1, floor = 0.001, steps = 100
        let schedule = LearningRateSchedule.cosine(initial: initial, floor: floor, steps: steps)
        let tolerance = 4 * Double.ulpOfOne * initial
        #expect(abs(schedule.learningRate(atStep: 0) - initial) <= tolerance)
        // cos(π/2) = 0: halfway between initial and floor.
        #expect(abs(schedule.learningRate(atStep: 50) - (initial + floor) / 2) <= tolerance)
        // cos(π/4) = cos(−π/4) = √2/2: a quarter of the way the rate is floor + (initial − floor)(1 + √2/2)/2.
        let quarter = floor + (initial - floor) * (1 + 0.5.squareRoot()) / 2
        #expect(abs(schedule.learningRate(atStep: 25) - quarter) <= tolerance)
        #expect(schedule.learningRate(atStep: 100) == floor)
        #expect(schedule.learningRate(atStep: 250) == floor)
        // Monotone in between, never below the floor.
        let rates = (0...steps).map { schedule.learningRate(atStep: $0) }
        #expect(zip(rates, rates.dropFirst()).allSatisfy { $0 >= $1 })
        #expect(rates.allSatisfy { $0 >= floor })
        // The epoch form is the step form with epochs × steps per epoch.
        #expect(LearningRateSchedule.cosine(initial: initial, floor: floor, epochs: 4, stepsPerEpoch: 25) == schedule)
    }

    @Test func linearWarmupRampsThenHandsOverToTheWrappedSchedule() {
        let inner = LearningRateSchedule.cosine(initial: 0.8, floor: 0, steps: 40)
        let schedule = LearningRateSchedule.linearWarmup(steps: 8, startFactor: 0.25, then: inner)
        // Ramp: 0.8 · (0.25 + 0.75 · t / 8); at t = 0 the start value, at t = 4 halfway.
        #expect(schedule.learningRate(atStep: 0) == 0.2)
        #expect(abs(schedule.learningRate(atStep: 4) - 0.5) <= 4 * Double.ulpOfOne)
        for t in 0..<8 {
            let expected = 0.8 * (0.25 + 0.75 * Double(t) / 8)
            #expect(abs(schedule.learningRate(atStep: t) - expected) <= 4 * Double.ulpOfOne)
        }
        // After the warm-up the wrapped schedule runs from its own step 0.
        for t in 8..<60 { #expect(schedule.learningRate(atStep: t) == inner.learningRate(atStep: t - 8)) }
        // Increasing through the ramp into the wrapped schedule's start.
        let ramp = (0...8).map { schedule.learningRate(atStep: $0) }
        #expect(zip(ramp, ramp.dropFirst()).allSatisfy { $0 < $1 })
        // A zero start factor begins at 0; a zero-length warm-up is the wrapped schedule itself.
        let fromZero = LearningRateSchedule.linearWarmup(steps: 5, startFactor: 0, then: .constant(0.5))
        #expect(fromZero.learningRate(atStep: 0) == 0)
        #expect(fromZero.learningRate(atStep: 5) == 0.5)
        let none = LearningRateSchedule.linearWarmup(steps: 0, startFactor: 0, then: .stepDecay(initial: 1, stepSize: 2, gamma: 0.5))
        #expect((0..<10).allSatisfy { none.learningRate(atStep: $0) == pow(0.5, Double($0 / 2)) })
    }

    @Test func schedulesRoundTripThroughJSON() throws {
        let schedule = LearningRateSchedule.linearWarmup(
            steps: 3, startFactor: 0.1,
            then: .linearWarmup(steps: 2, startFactor: 0.5, then: .stepDecay(initial: 0.3, stepSize: 4, gamma: 0.7)))
        let decoded = try JSONDecoder().decode(LearningRateSchedule.self, from: JSONEncoder().encode(schedule))
        #expect(decoded == schedule)
        #expect((0..<30).allSatisfy { decoded.learningRate(atStep: $0) == schedule.learningRate(atStep: $0) })
    }

    @Test func invalidSchedulesAreReported() {
        #expect(LearningRateSchedule.constant(0.1).problem == nil)
        #expect(LearningRateSchedule.constant(-1).problem != nil)
        #expect(LearningRateSchedule.stepDecay(initial: 0.1, stepSize: 0, gamma: 0.1).problem != nil)
        #expect(LearningRateSchedule.cosine(initial: .nan, floor: 0, steps: 10).problem != nil)
        #expect(LearningRateSchedule.linearWarmup(steps: 2, startFactor: 1.5, then: .constant(1)).problem != nil)
        #expect(LearningRateSchedule.linearWarmup(steps: 2, startFactor: 0, then: .cosine(initial: 1, floor: 0, steps: 0)).problem != nil)
    }
}
