using CsCheck;

namespace Lepton.Shared.Tests;

public sealed class ModelNameTests
{
    [Theory]
    [InlineData("digits")]
    [InlineData("fraud-v2")]
    [InlineData("a")]
    [InlineData("0")]
    [InlineData("a23456789012345678901234567890123456789012345678901234567890123")]
    public void Accepts_valid_names(string name) => Assert.Equal(name, ModelName.Validate(name));

    [Theory]
    [InlineData("")]
    [InlineData("Digits")]
    [InlineData("-digits")]
    [InlineData("digits-")]
    [InlineData("dig_its")]
    [InlineData("dig.its")]
    [InlineData("..")]
    [InlineData("a/b")]
    [InlineData("digits\n")]
    [InlineData("dígits")]
    [InlineData("ԁigits")] // Cyrillic 'ԁ' looks like 'd'
    [InlineData("a234567890123456789012345678901234567890123456789012345678901234")]
    public void Refuses_invalid_names_with_a_message_that_says_what_to_use(string name)
    {
        var error = Assert.Throws<InvalidModelNameException>(() => ModelName.Validate(name));
        Assert.Contains("lowercase letters, digits and hyphens", error.Message);
        Assert.DoesNotContain("\n", error.Message);
    }
}

public sealed class SemVerTests
{
    [Theory]
    [InlineData("0.0.0")]
    [InlineData("1.2.3")]
    [InlineData("10.20.30")]
    [InlineData("1.0.0-alpha")]
    [InlineData("1.0.0-alpha.1")]
    [InlineData("1.0.0-0.3.7")]
    [InlineData("1.0.0-x.7.z.92")]
    [InlineData("1.0.0-alpha+001")]
    [InlineData("1.0.0+20130313144700")]
    [InlineData("1.0.0-beta+exp.sha.5114f85")]
    [InlineData("1.0.0--")]
    [InlineData("9999999999.0.0")]
    public void Parses_and_prints_strict_semver(string text) => Assert.Equal(text, SemVer.Parse(text).ToString());

    [Theory]
    [InlineData("1.2")]
    [InlineData("v1.2.3")]
    [InlineData("01.2.3")]
    [InlineData("1.02.3")]
    [InlineData("1.2.3-01")]
    [InlineData("1.2.3\n")]
    [InlineData("1.2.3 ")]
    [InlineData(" 1.2.3")]
    [InlineData("1..2")]
    [InlineData("1.2.3-")]
    [InlineData("1.2.3+")]
    [InlineData("1.2.3-a..b")]
    [InlineData("1.2.٣")] // Arabic-Indic digit three
    [InlineData("１.2.3")] // full-width digit one
    [InlineData("1.2.3-α")]
    [InlineData("10000000000.0.0")]
    [InlineData("1.0.0-10000000000")]
    [InlineData("")]
    public void Refuses_anything_else(string text)
    {
        var error = Assert.Throws<InvalidVersionException>(() => SemVer.Parse(text));
        Assert.Contains("invalid version", error.Message);
    }

    [Fact]
    public void Orders_by_precedence_as_the_specification_lists_it()
    {
        string[] ordered =
        [
            "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
            "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "1.10.0", "2.0.0",
        ];
        var parsed = ordered.Select(SemVer.Parse).ToList();
        for (var i = 1; i < parsed.Count; i++)
        {
            Assert.True(parsed[i - 1] < parsed[i], $"{parsed[i - 1]} < {parsed[i]}");
            Assert.True(string.CompareOrdinal(parsed[i - 1].SortKey, parsed[i].SortKey) < 0);
        }
    }

    [Fact]
    public void Build_metadata_does_not_change_precedence() =>
        Assert.Equal(SemVer.Parse("1.0.0+a"), SemVer.Parse("1.0.0+b"));

    [Theory]
    [InlineData("1.0.0", null, Bump.Initial)]
    [InlineData("1.0.1", "1.0.0", Bump.Patch)]
    [InlineData("1.1.0", "1.0.3", Bump.Minor)]
    [InlineData("2.0.0", "1.9.9", Bump.Major)]
    [InlineData("1.0.0", "2.0.0", Bump.Major)]
    public void Bump_is_the_field_that_changed(string candidate, string? production, Bump expected) =>
        Assert.Equal(expected, SemVer.Parse(candidate).BumpFrom(production is null ? null : SemVer.Parse(production)));

    private static readonly Gen<string> Identifier = Gen.OneOf(
        Gen.Long[0, 30].Select(n => n.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        Gen.String[Gen.Char["abcxyz-"], 1, 4].Where(s => !s.All(char.IsAsciiDigit)));

    private static readonly Gen<string> Versions =
        Gen.Select(Gen.Long[0, 12], Gen.Long[0, 12], Gen.Long[0, 12], Identifier.Array[0, 3], Identifier.Array[0, 2])
            .Select((ma, mi, pa, pre, build) =>
                $"{ma}.{mi}.{pa}" + (pre.Length > 0 ? "-" + string.Join('.', pre) : "") + (build.Length > 0 ? "+" + string.Join('.', build.Select(b => b.Replace("-", "x", StringComparison.Ordinal))) : ""));

    [Fact]
    public void Sort_key_order_is_semver_precedence() =>
        Gen.Select(Versions, Versions).Sample((a, b) =>
        {
            var x = SemVer.Parse(a);
            var y = SemVer.Parse(b);
            return Math.Sign(string.CompareOrdinal(x.SortKey, y.SortKey)) == Math.Sign(SpecCompare(x, y));
        });

    [Fact]
    public void Round_trips_through_text() =>
        Versions.Sample(v => SemVer.Parse(v).ToString() == v && SemVer.Parse(SemVer.Parse(v).ToString()) == SemVer.Parse(v));

    // SemVer 2.0.0 §11, written out independently of SortKey.
    private static int SpecCompare(SemVer a, SemVer b)
    {
        foreach (var (x, y) in new[] { (a.Major, b.Major), (a.Minor, b.Minor), (a.Patch, b.Patch) })
        {
            if (x != y)
            {
                return x.CompareTo(y);
            }
        }
        if (a.Prerelease.Count == 0 || b.Prerelease.Count == 0)
        {
            return (a.Prerelease.Count == 0 ? 1 : 0) - (b.Prerelease.Count == 0 ? 1 : 0);
        }
        for (var i = 0; i < Math.Min(a.Prerelease.Count, b.Prerelease.Count); i++)
        {
            var (p, q) = (a.Prerelease[i], b.Prerelease[i]);
            var (pn, qn) = (p.All(char.IsAsciiDigit), q.All(char.IsAsciiDigit));
            var order = (pn, qn) switch
            {
                (true, true) => long.Parse(p, System.Globalization.CultureInfo.InvariantCulture).CompareTo(long.Parse(q, System.Globalization.CultureInfo.InvariantCulture)),
                (true, false) => -1,
                (false, true) => 1,
                _ => string.CompareOrdinal(p, q),
            };
            if (order != 0)
            {
                return order;
            }
        }
        return a.Prerelease.Count.CompareTo(b.Prerelease.Count);
    }
}
