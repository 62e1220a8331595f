using System.Globalization;
using System.Text.RegularExpressions;

namespace Lepton.Shared;

/// <summary>
/// Model names: 1-63 lowercase ASCII letters, digits and hyphens, starting and ending with a letter
/// or digit. They end up in blob paths and table keys, so anything else is refused before any write.
/// </summary>
public static partial class ModelName
{
    public const string Pattern = "^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$";

    // \A and \z, not ^ and $: .NET's $ also matches before a trailing newline.
    [GeneratedRegex(@"\A[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\z", RegexOptions.CultureInvariant)]
    private static partial Regex NameRegex();

    public static bool IsValid(string? name) => name is not null && NameRegex().IsMatch(name);

    /// <summary>Returns <paramref name="name"/> when valid, else throws <see cref="InvalidModelNameException"/>.</summary>
    public static string Validate(string? name)
    {
        if (!IsValid(name))
        {
            throw new InvalidModelNameException(
                $"invalid model name {Quote(name)}: use 1-63 lowercase letters, digits and hyphens, "
                + "starting and ending with a letter or digit (e.g. 'digits' or 'fraud-v2')");
        }
        return name!;
    }

    /// <summary>A value quoted for an error message, with control and non-ASCII characters escaped.</summary>
    internal static string Quote(string? value)
    {
        if (value is null)
        {
            return "null";
        }
        var builder = new System.Text.StringBuilder("'");
        foreach (var ch in value.Length > 80 ? value[..80] + "…" : value)
        {
            if (ch is >= ' ' and <= '~' && ch != '\'')
            {
                builder.Append(ch);
            }
            else
            {
                builder.Append(CultureInfo.InvariantCulture, $"\\u{(int)ch:x4}");
            }
        }
        return builder.Append('\'').ToString();
    }
}

/// <summary>Which SemVer field changed between production and a candidate (picks the rollout path).</summary>
public enum Bump
{
    /// <summary>No production version yet.</summary>
    Initial,
    Patch,
    Minor,
    Major,
}

/// <summary>
/// A strict SemVer 2.0.0 version. Equality and ordering follow SemVer precedence (build metadata is
/// ignored); <see cref="SortKey"/> encodes that order as a string whose ordinal order matches, so a
/// Table RowKey lists versions correctly.
/// </summary>
public sealed partial class SemVer : IComparable<SemVer>, IEquatable<SemVer>
{
    /// <summary>Ten digits cover every numeric field a table key carries sensibly; larger ones are refused.</summary>
    public const long MaxNumeric = 9_999_999_999;

    // The official semver.org expression, ASCII digits only ([0-9], not \d, which matches any
    // Unicode digit), anchored with \A...\z so a trailing newline is refused.
    [GeneratedRegex(
        @"\A(?<major>0|[1-9][0-9]*)\.(?<minor>0|[1-9][0-9]*)\.(?<patch>0|[1-9][0-9]*)"
        + @"(?:-(?<pre>(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
        + @"(?:\+(?<build>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?\z",
        RegexOptions.CultureInvariant | RegexOptions.ExplicitCapture)]
    private static partial Regex SemVerRegex();

    private SemVer(long major, long minor, long patch, string[] prerelease, string[] build)
    {
        Major = major;
        Minor = minor;
        Patch = patch;
        Prerelease = prerelease;
        Build = build;
        SortKey = BuildSortKey();
    }

    public long Major { get; }

    public long Minor { get; }

    public long Patch { get; }

    public IReadOnlyList<string> Prerelease { get; }

    public IReadOnlyList<string> Build { get; }

    /// <summary>
    /// A string whose ordinal order is SemVer precedence (build metadata ignored). Numeric
    /// identifiers are zero-padded and sort before alphanumeric ones; <c>!</c> separates identifiers
    /// because it sorts below every identifier character, so a shorter pre-release list sorts first;
    /// a release ends in <c>~</c>, above any pre-release.
    /// </summary>
    public string SortKey { get; }

    /// <summary>Parses strict SemVer 2.0.0 or throws <see cref="InvalidVersionException"/>.</summary>
    public static SemVer Parse(string? text)
    {
        if (TryParse(text, out var version, out var error))
        {
            return version;
        }
        throw new InvalidVersionException(error);
    }

    public static bool TryParse(string? text, out SemVer version) => TryParse(text, out version, out _);

    private static bool TryParse(string? text, out SemVer version, out string error)
    {
        version = null!;
        var match = text is null ? null : SemVerRegex().Match(text);
        if (match is null || !match.Success)
        {
            error = $"invalid version {ModelName.Quote(text)}: use strict SemVer 2.0.0, MAJOR.MINOR.PATCH with "
                + "optional -prerelease and +build (e.g. '1.4.0', '2.0.0-rc.1'); no leading 'v', no leading zeros";
            return false;
        }
        var pre = match.Groups["pre"].Success ? match.Groups["pre"].Value.Split('.') : [];
        var build = match.Groups["build"].Success ? match.Groups["build"].Value.Split('.') : [];
        var numbers = new long[3];
        var fields = new[] { "major", "minor", "patch" };
        for (var i = 0; i < 3; i++)
        {
            if (!TryNumeric(match.Groups[fields[i]].Value, out numbers[i]))
            {
                error = TooBig(text!);
                return false;
            }
        }
        foreach (var identifier in pre)
        {
            if (IsNumeric(identifier) && !TryNumeric(identifier, out _))
            {
                error = TooBig(text!);
                return false;
            }
        }
        version = new SemVer(numbers[0], numbers[1], numbers[2], pre, build);
        error = "";
        return true;
    }

    private static string TooBig(string text) =>
        $"invalid version {ModelName.Quote(text)}: numeric fields must be ≤ {MaxNumeric}";

    private static bool IsNumeric(string identifier) => identifier.All(char.IsAsciiDigit);

    private static bool TryNumeric(string digits, out long value) =>
        long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out value) && value <= MaxNumeric;

    private string BuildSortKey()
    {
        var core = $"{Major:D10}.{Minor:D10}.{Patch:D10}";
        if (Prerelease.Count == 0)
        {
            return core + "~";
        }
        var parts = Prerelease.Select(p => IsNumeric(p) ? "0" + long.Parse(p, CultureInfo.InvariantCulture).ToString("D10", CultureInfo.InvariantCulture) : "1" + p);
        return core + "!" + string.Join('!', parts);
    }

    /// <summary>The kind of change from <paramref name="production"/> to this version.</summary>
    public Bump BumpFrom(SemVer? production)
    {
        if (production is null)
        {
            return Bump.Initial;
        }
        if (Major != production.Major)
        {
            return Bump.Major;
        }
        return Minor != production.Minor ? Bump.Minor : Bump.Patch;
    }

    public override string ToString()
    {
        var text = $"{Major}.{Minor}.{Patch}";
        if (Prerelease.Count > 0)
        {
            text += "-" + string.Join('.', Prerelease);
        }
        if (Build.Count > 0)
        {
            text += "+" + string.Join('.', Build);
        }
        return text;
    }

    public int CompareTo(SemVer? other) => other is null ? 1 : string.CompareOrdinal(SortKey, other.SortKey);

    public bool Equals(SemVer? other) => other is not null && SortKey == other.SortKey;

    public override bool Equals(object? obj) => obj is SemVer other && Equals(other);

    public override int GetHashCode() => StringComparer.Ordinal.GetHashCode(SortKey);

    public static bool operator ==(SemVer? left, SemVer? right) => left is null ? right is null : left.Equals(right);

    public static bool operator !=(SemVer? left, SemVer? right) => !(left == right);

    public static bool operator <(SemVer left, SemVer right) => left.CompareTo(right) < 0;

    public static bool operator >(SemVer left, SemVer right) => left.CompareTo(right) > 0;

    public static bool operator <=(SemVer left, SemVer right) => left.CompareTo(right) <= 0;

    public static bool operator >=(SemVer left, SemVer right) => left.CompareTo(right) >= 0;
}
