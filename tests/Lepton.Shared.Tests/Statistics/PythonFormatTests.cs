using Lepton.Shared.Statistics;

namespace Lepton.Shared.Tests.Statistics;

/// <summary>Reason texts print numbers as the reference's Python did (expected values from Python 3.11).</summary>
public sealed class PythonFormatTests
{
    [Theory]
    [InlineData(1.8047112500642271e-09, 2, "1.8e-09")]
    [InlineData(0.00014780231033445398, 2, "0.00015")]
    [InlineData(3.108946158260031e-75, 2, "3.1e-75")]
    [InlineData(0.0001, 2, "0.0001")]
    [InlineData(0.00001, 2, "1e-05")]
    [InlineData(123456789.0, 6, "1.23457e+08")]
    [InlineData(100000.0, 6, "100000")]
    [InlineData(1e6, 6, "1e+06")]
    [InlineData(0.5, 6, "0.5")]
    [InlineData(2.5, 2, "2.5")]
    [InlineData(0.125, 2, "0.12")]
    [InlineData(0.375, 2, "0.38")]
    [InlineData(140.0, 6, "140")]
    [InlineData(99.95, 3, "100")]
    [InlineData(-0.004567, 2, "-0.0046")]
    [InlineData(0.0, 2, "0")]
    [InlineData(double.PositiveInfinity, 6, "inf")]
    [InlineData(double.NaN, 6, "nan")]
    public void General_format(double value, int precision, string expected) =>
        Assert.Equal(expected, PythonFormat.G(value, precision));

    [Theory]
    [InlineData(0.125, 2, "0.12")]
    [InlineData(2.675, 2, "2.67")]
    [InlineData(15.0, 2, "15.00")]
    [InlineData(336.8421052631579, 1, "336.8")]
    [InlineData(2.5, 0, "2")]
    [InlineData(double.PositiveInfinity, 1, "inf")]
    public void Fixed_format(double value, int decimals, string expected) =>
        Assert.Equal(expected, PythonFormat.F(value, decimals));

    [Theory]
    [InlineData(14.2049, "+14.20")]
    [InlineData(-0.5, "-0.50")]
    [InlineData(0.0, "+0.00")]
    public void Signed_fixed_format(double value, string expected) =>
        Assert.Equal(expected, PythonFormat.SignedF(value, 2));
}
