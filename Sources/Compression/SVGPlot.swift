import Foundation

/// A self-contained SVG line plot: axes with ticks and labels, a title, several series (lines with markers) and
/// a legend. Text is XML-escaped.
///
/// ```swift
/// var plot = SVGPlot(title: "Accuracy vs compression", xLabel: "compression ratio (×)", yLabel: "accuracy (%)")
/// plot.series.append(.init(name: "effective rank", points: [(2, 91.0), (4, 90.2)]))
/// try plot.render().write(toFile: "plot.svg", atomically: true, encoding: .utf8)
/// ```
public struct SVGPlot: Sendable {
    /// One line of the plot.
    public struct Series: Sendable {
        /// The legend entry.
        public var name: String
        /// (x, y) points; drawn in order of x. Non-finite points are skipped.
        public var points: [(x: Double, y: Double)]

        public init(name: String, points: [(x: Double, y: Double)]) {
            self.name = name
            self.points = points
        }
    }

    /// The title above the plot.
    public var title: String
    /// The x-axis label.
    public var xLabel: String
    /// The y-axis label.
    public var yLabel: String
    /// The lines.
    public var series: [Series] = []
    /// Width and height in pixels.
    public var width = 720.0, height = 460.0

    public init(title: String, xLabel: String, yLabel: String) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
    }

    /// The colors of successive series (cycled).
    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"]

    /// The SVG document.
    public func render() -> String {
        let left = 70.0, right = 190.0, top = 40.0, bottom = 55.0
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        let points = series.flatMap(\.points).filter { $0.x.isFinite && $0.y.isFinite }
        let xTicks = SVGPlot.ticks(points.map(\.x)), yTicks = SVGPlot.ticks(points.map(\.y))
        let (x0, x1) = (xTicks.first!, xTicks.last!), (y0, y1) = (yTicks.first!, yTicks.last!)
        func px(_ x: Double) -> Double { left + (x - x0) / (x1 - x0) * plotWidth }
        func py(_ y: Double) -> Double { top + plotHeight - (y - y0) / (y1 - y0) * plotHeight }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(f(width))" height="\(f(height))" viewBox="0 0 \(f(width)) \(f(height))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(f(left + plotWidth / 2))" y="22" text-anchor="middle" font-size="15">\(SVGPlot.escaped(title))</text>

        """
        for tick in xTicks {
            svg += "<line x1=\"\(f(px(tick)))\" y1=\"\(f(top))\" x2=\"\(f(px(tick)))\" y2=\"\(f(top + plotHeight))\" stroke=\"#e5e5e5\"/>\n"
            svg += "<text x=\"\(f(px(tick)))\" y=\"\(f(top + plotHeight + 18))\" text-anchor=\"middle\">\(SVGPlot.label(tick))</text>\n"
        }
        for tick in yTicks {
            svg += "<line x1=\"\(f(left))\" y1=\"\(f(py(tick)))\" x2=\"\(f(left + plotWidth))\" y2=\"\(f(py(tick)))\" stroke=\"#e5e5e5\"/>\n"
            svg += "<text x=\"\(f(left - 8))\" y=\"\(f(py(tick) + 4))\" text-anchor=\"end\">\(SVGPlot.label(tick))</text>\n"
        }
        svg += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotWidth))\" height=\"\(f(plotHeight))\" fill=\"none\" stroke=\"black\"/>\n"
        svg += "<text x=\"\(f(left + plotWidth / 2))\" y=\"\(f(height - 14))\" text-anchor=\"middle\">\(SVGPlot.escaped(xLabel))</text>\n"
        svg += "<text transform=\"translate(18 \(f(top + plotHeight / 2))) rotate(-90)\" text-anchor=\"middle\">\(SVGPlot.escaped(yLabel))</text>\n"
        for (index, line) in series.enumerated() {
            let color = SVGPlot.palette[index % SVGPlot.palette.count]
            let sorted = line.points.filter { $0.x.isFinite && $0.y.isFinite }.sorted { $0.x < $1.x }
            if sorted.count > 1 {
                let path = sorted.map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " ")
                svg += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"/>\n"
            }
            for point in sorted {
                svg += "<circle cx=\"\(f(px(point.x)))\" cy=\"\(f(py(point.y)))\" r=\"3.5\" fill=\"\(color)\"/>\n"
            }
            let legendY = top + 10 + Double(index) * 20
            svg += "<line x1=\"\(f(left + plotWidth + 15))\" y1=\"\(f(legendY))\" x2=\"\(f(left + plotWidth + 40))\" y2=\"\(f(legendY))\" stroke=\"\(color)\" stroke-width=\"2\"/>\n"
            svg += "<text x=\"\(f(left + plotWidth + 46))\" y=\"\(f(legendY + 4))\">\(SVGPlot.escaped(line.name))</text>\n"
        }
        return svg + "</svg>\n"
    }

    /// About five round tick values covering `values` (0…1 when there are none).
    static func ticks(_ values: [Double]) -> [Double] {
        guard var low = values.min(), var high = values.max() else { return [0, 0.25, 0.5, 0.75, 1] }
        if high - low < 1e-12 { low -= 0.5; high += 0.5 }
        let raw = (high - low) / 5
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        let start = floor(low / step) * step
        var ticks: [Double] = []
        var tick = start
        while tick < high + step * 1e-9 { ticks.append(tick); tick += step }
        if ticks.last! < high { ticks.append(tick) }
        return ticks.count < 2 ? [start, start + step] : ticks
    }

    /// A tick label without trailing zeros.
    static func label(_ value: Double) -> String {
        let text = String(format: "%.3f", value)
        var trimmed = text
        while trimmed.hasSuffix("0") { trimmed.removeLast() }
        if trimmed.hasSuffix(".") { trimmed.removeLast() }
        return trimmed == "-0" ? "0" : trimmed
    }

    /// `text` with &, <, >, " and ' escaped for XML.
    public static func escaped(_ text: String) -> String {
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
}
