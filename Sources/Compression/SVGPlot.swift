import Foundation

/// A small, self-contained SVG line and scatter plot: axes with "nice" ticks (1, 2, 5 × 10ᵏ; powers of ten on a log
/// axis), axis labels, a title, a legend and optional point labels. Text is XML-escaped.
///
/// ```swift
/// var plot = SVGPlot(title: "Accuracy vs compression", xLabel: "compression ratio", yLabel: "top-1 (%)")
/// plot.logX = true
/// plot.series.append(.init(name: "TT", points: [(5.1, 91.2)], style: .markers, pointLabels: ["TT"]))
/// try plot.render().write(toFile: "plot.svg", atomically: true, encoding: .utf8)
/// ```
public struct SVGPlot: Sendable {
    /// How a series is drawn.
    public enum Style: Sendable, Equatable {
        case line, markers, lineAndMarkers, dashedLine
    }

    /// One named set of points.
    public struct Series: Sendable {
        /// The legend entry.
        public var name: String
        /// The points, drawn in order.
        public var points: [(x: Double, y: Double)]
        /// How to draw them.
        public var style: Style
        /// A text next to each point (nil: none).
        public var pointLabels: [String]?

        /// A series.
        public init(name: String, points: [(x: Double, y: Double)], style: Style = .lineAndMarkers,
                    pointLabels: [String]? = nil) {
            self.name = name
            self.points = points
            self.style = style
            self.pointLabels = pointLabels
        }
    }

    /// Texts.
    public var title: String, xLabel: String, yLabel: String
    /// Logarithmic axes (points ≤ 0 are dropped there).
    public var logX = false, logY = false
    /// Size in pixels.
    public var width = 720.0, height = 440.0
    /// The series, drawn in order with the palette's colours.
    public var series: [Series] = []

    /// A plot without series.
    public init(title: String, xLabel: String, yLabel: String) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
    }

    /// Colour-blind-safe colours (Okabe–Ito, then four of Tol's muted scheme), cycled.
    public static let palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
                                 "#882255", "#44AA99", "#999933", "#AA4499"]

    /// The SVG document.
    public func render() -> String {
        let left = 70.0, right = 170.0, top = 40.0, bottom = 55.0
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        let visible = series.map { s in s.points.enumerated().filter { (!logX || $1.x > 0) && (!logY || $1.y > 0) && $1.x.isFinite && $1.y.isFinite } }
        let xs = visible.flatMap { $0.map(\.element.x) }, ys = visible.flatMap { $0.map(\.element.y) }
        let xAxis = Axis(values: xs, logarithmic: logX), yAxis = Axis(values: ys, logarithmic: logY)
        func px(_ x: Double) -> Double { left + xAxis.fraction(x) * plotWidth }
        func py(_ y: Double) -> Double { top + (1 - yAxis.fraction(y)) * plotHeight }
        var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(f(width))" height="\(f(height))" viewBox="0 0 \(f(width)) \(f(height))" font-family="Helvetica, Arial, sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(f(left + plotWidth / 2))" y="22" text-anchor="middle" font-size="15" font-weight="bold">\(escape(title))</text>

        """
        // Grid and ticks.
        for tick in xAxis.ticks {
            let x = px(tick)
            svg += "<line x1=\"\(f(x))\" y1=\"\(f(top))\" x2=\"\(f(x))\" y2=\"\(f(top + plotHeight))\" stroke=\"#e5e5e5\"/>\n"
            svg += "<text x=\"\(f(x))\" y=\"\(f(top + plotHeight + 16))\" text-anchor=\"middle\">\(escape(Axis.label(tick)))</text>\n"
        }
        for tick in yAxis.ticks {
            let y = py(tick)
            svg += "<line x1=\"\(f(left))\" y1=\"\(f(y))\" x2=\"\(f(left + plotWidth))\" y2=\"\(f(y))\" stroke=\"#e5e5e5\"/>\n"
            svg += "<text x=\"\(f(left - 6))\" y=\"\(f(y + 4))\" text-anchor=\"end\">\(escape(Axis.label(tick)))</text>\n"
        }
        svg += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotWidth))\" height=\"\(f(plotHeight))\" fill=\"none\" stroke=\"#333\"/>\n"
        svg += "<text x=\"\(f(left + plotWidth / 2))\" y=\"\(f(height - 12))\" text-anchor=\"middle\" font-size=\"13\">\(escape(xLabel))</text>\n"
        svg += "<text transform=\"translate(18 \(f(top + plotHeight / 2))) rotate(-90)\" text-anchor=\"middle\" font-size=\"13\">\(escape(yLabel))</text>\n"
        // Series and legend.
        for (index, (line, points)) in zip(series, visible).enumerated() {
            let color = Self.palette[index % Self.palette.count]
            if line.style != .markers, points.count > 1 {
                let path = points.map { "\(f(px($0.element.x))),\(f(py($0.element.y)))" }.joined(separator: " ")
                let dash = line.style == .dashedLine ? " stroke-dasharray=\"6 4\"" : ""
                svg += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"\(dash)/>\n"
            }
            if line.style == .markers || line.style == .lineAndMarkers {
                for point in points {
                    svg += "<circle cx=\"\(f(px(point.element.x)))\" cy=\"\(f(py(point.element.y)))\" r=\"4\" fill=\"\(color)\"/>\n"
                }
            }
            if let labels = line.pointLabels {
                for point in points where point.offset < labels.count {
                    svg += "<text x=\"\(f(px(point.element.x) + 7))\" y=\"\(f(py(point.element.y) - 7))\" fill=\"\(color)\">\(escape(labels[point.offset]))</text>\n"
                }
            }
            let y = top + 10 + Double(index) * 20
            let x = left + plotWidth + 14
            if line.style == .markers {
                svg += "<circle cx=\"\(f(x + 12))\" cy=\"\(f(y))\" r=\"4\" fill=\"\(color)\"/>\n"
            } else {
                let dash = line.style == .dashedLine ? " stroke-dasharray=\"6 4\"" : ""
                svg += "<line x1=\"\(f(x))\" y1=\"\(f(y))\" x2=\"\(f(x + 24))\" y2=\"\(f(y))\" stroke=\"\(color)\" stroke-width=\"2\"\(dash)/>\n"
            }
            svg += "<text x=\"\(f(x + 30))\" y=\"\(f(y + 4))\">\(escape(line.name))</text>\n"
        }
        return svg + "</svg>\n"
    }

    /// Writes the SVG to `path` atomically.
    ///
    /// - Throws: the file error.
    public func write(to path: String) throws {
        try render().write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// `&`, `<`, `>`, `"` and `'` as XML entities.
    public static func escape(_ text: String) -> String {
        var result = ""
        for character in text {
            switch character {
            case "&": result += "&amp;"
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            case "\"": result += "&quot;"
            case "'": result += "&apos;"
            default: result.append(character)
            }
        }
        return result
    }

    private func escape(_ text: String) -> String { Self.escape(text) }
    private func f(_ value: Double) -> String { String(format: "%.1f", value) }
}

/// The range and ticks of one axis.
struct Axis {
    let low: Double, high: Double, logarithmic: Bool
    let ticks: [Double]

    init(values: [Double], logarithmic: Bool) {
        self.logarithmic = logarithmic
        let finite = values.filter(\.isFinite)
        var low = finite.min() ?? 0, high = finite.max() ?? 1
        if logarithmic {
            low = Foundation.log10(low > 0 ? low : 1)
            high = Foundation.log10(high > 0 ? high : 10)
        }
        if high - low < 1e-12 { low -= 0.5; high += 0.5 }
        let pad = (high - low) * 0.06
        low -= pad
        high += pad
        if logarithmic {
            var ticks = (Int(Foundation.floor(low))...Int(Foundation.ceil(high))).map { Foundation.pow(10, Double($0)) }
            if high - low < 2 {  // fewer than two decades: add 2× and 5×
                ticks = ticks.flatMap { [$0, 2 * $0, 5 * $0] }
            }
            self.ticks = ticks.filter { Foundation.log10($0) >= low && Foundation.log10($0) <= high }
        } else {
            let raw = (high - low) / 6
            let magnitude = Foundation.pow(10, Foundation.floor(Foundation.log10(raw)))
            let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
            let first = Foundation.ceil(low / step) * step
            self.ticks = stride(from: first, through: high + step * 1e-9, by: step).map { abs($0) < step * 1e-9 ? 0 : $0 }
        }
        self.low = low
        self.high = high
    }

    /// Where `value` lies between the ends, in [0, 1].
    func fraction(_ value: Double) -> Double {
        let v = logarithmic ? Foundation.log10(value) : value
        return (v - low) / (high - low)
    }

    /// A short tick label.
    static func label(_ value: Double) -> String {
        if value == 0 { return "0" }
        let magnitude = abs(value)
        if magnitude >= 1e5 || magnitude < 1e-3 { return String(format: "%.0e", value) }
        if value == value.rounded() { return String(format: "%.0f", value) }
        var text = String(format: "%.3f", value)
        while text.hasSuffix("0") { text.removeLast() }
        return text
    }
}
