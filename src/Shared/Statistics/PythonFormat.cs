using System.Globalization;

namespace Lepton.Shared.Statistics;

/// <summary>
/// Number formats of the reference's reason texts (Python's <c>g</c> and <c>f</c>), so the
/// sentences users read and the reports keep their wording after the port.
/// </summary>
internal static class PythonFormat
{
    /// <summary>Python's <c>{value:.{precision}g}</c>: significant digits, trailing zeros dropped.</summary>
    public static string G(double value, int precision = 6)
    {
        if (NonFinite(value) is { } text)
        {
            return text;
        }
        if (value == 0)
        {
            return double.IsNegative(value) ? "-0" : "0";
        }
        // Round to the significant digits first: the exponent after rounding decides the form.
        var scientific = value.ToString("E" + (precision - 1), CultureInfo.InvariantCulture);
        var exponent = int.Parse(scientific[(scientific.IndexOf('E') + 1)..], CultureInfo.InvariantCulture);
        if (exponent >= -4 && exponent < precision)
        {
            return TrimZeros(value.ToString("F" + (precision - 1 - exponent), CultureInfo.InvariantCulture));
        }
        var mantissa = TrimZeros(scientific[..scientific.IndexOf('E')]);
        var sign = exponent < 0 ? "-" : "+";
        return $"{mantissa}e{sign}{Math.Abs(exponent):00}";
    }

    /// <summary>Python's <c>{value:.{decimals}f}</c>.</summary>
    public static string F(double value, int decimals) =>
        NonFinite(value) ?? value.ToString("F" + decimals, CultureInfo.InvariantCulture);

    /// <summary>Python's <c>{value:+.{decimals}f}</c>.</summary>
    public static string SignedF(double value, int decimals) =>
        (double.IsNegative(value) || double.IsNaN(value) ? "" : "+") + F(value, decimals);

    private static string? NonFinite(double value) =>
        double.IsNaN(value) ? "nan"
        : double.IsPositiveInfinity(value) ? "inf"
        : double.IsNegativeInfinity(value) ? "-inf"
        : null;

    private static string TrimZeros(string fixedPoint) =>
        fixedPoint.Contains('.', StringComparison.Ordinal) ? fixedPoint.TrimEnd('0').TrimEnd('.') : fixedPoint;
}
