using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Lepton.Shared.Tests.Statistics;

/// <summary>
/// The reference implementation's outputs (<c>TestVectors/*.json</c>, copies of the design repo's
/// <c>shared/testvectors</c>) and the tolerance their README sets: 1e-9 relative, 1e-12 absolute
/// near zero, <c>"inf"</c>/<c>"nan"</c> as strings.
/// </summary>
internal static class Vectors
{
    public const double Relative = 1e-9;
    public const double Absolute = 1e-12;

    public static readonly string[] Files = ["statistics.json", "canary_decisions.json"];

    public static readonly string[] StatisticsSections =
    [
        "latency_bucket_bounds_ms", "error_rate_evidence", "mann_whitney_from_buckets", "sample_ratio_mismatch",
        "flip_rate_test", "population_stability_index", "wilcoxon_paired_latency", "mcnemar",
    ];

    private static readonly Lazy<JsonObject> StatisticsDocument = new(() => Load("statistics.json"));
    private static readonly Lazy<JsonObject> DecisionsDocument = new(() => Load("canary_decisions.json"));

    public static JsonObject Statistics => StatisticsDocument.Value;

    public static JsonObject Decisions => DecisionsDocument.Value;

    /// <summary>The copy the build placed next to the test assembly.</summary>
    public static string OutputCopy(string file) => Path.Combine(AppContext.BaseDirectory, "TestVectors", file);

    /// <summary>The copy checked into this repository.</summary>
    public static string RepositoryCopy(string file) =>
        Path.Combine(RepositoryRoot(), "tests", "Lepton.Shared.Tests", "TestVectors", file);

    /// <summary>The design repo's folder beside the checkout (<c>../shared/testvectors</c>), which may be absent.</summary>
    public static string SharedFolder() => Path.GetFullPath(Path.Combine(RepositoryRoot(), "..", "shared", "testvectors"));

    public static JsonArray Section(string name) => Statistics[name]!.AsArray();

    public static JsonObject Case(string section, int index) => Section(section)[index]!.AsObject();

    public static TheoryData<int> Indices(string section) => new(Enumerable.Range(0, Section(section).Count));

    public static long[] Longs(JsonNode? node) => node!.AsArray().Select(x => x!.GetValue<long>()).ToArray();

    public static double[] Doubles(JsonNode? node) => node!.AsArray().Select(Number).ToArray();

    /// <summary>A number of the vectors, with <c>"inf"</c>, <c>"-inf"</c> and <c>"nan"</c> read as such.</summary>
    public static double Number(JsonNode? node)
    {
        var value = node!.AsValue();
        if (value.TryGetValue<string>(out var text))
        {
            return text switch
            {
                "inf" => double.PositiveInfinity,
                "-inf" => double.NegativeInfinity,
                "nan" => double.NaN,
                _ => throw new FormatException($"not a number: {text}"),
            };
        }
        return value.GetValue<double>();
    }

    /// <summary>Asserts <paramref name="actual"/> equals the vector's number within the README's tolerance.</summary>
    public static void AssertClose(JsonNode? expectedNode, double actual, string what) => AssertClose(Number(expectedNode), actual, what);

    public static void AssertClose(double expected, double actual, string what)
    {
        if (double.IsNaN(expected) || double.IsInfinity(expected))
        {
            Assert.True(expected.Equals(actual), $"{what}: expected {expected}, got {actual}");
            return;
        }
        var tolerance = Math.Max(Relative * Math.Abs(expected), Absolute);
        Assert.True(
            Math.Abs(actual - expected) <= tolerance,
            $"{what}: expected {expected.ToString("R", CultureInfo.InvariantCulture)}, got {actual.ToString("R", CultureInfo.InvariantCulture)} "
            + $"(|diff| {Math.Abs(actual - expected):E3} > {tolerance:E3})");
    }

    /// <summary>
    /// Asserts two JSON trees hold the same keys at every level, equal strings and booleans, and
    /// numbers within the tolerance (<c>"inf"</c>/<c>"nan"</c> strings compare as numbers).
    /// </summary>
    public static void AssertSameTree(JsonNode? expected, JsonNode? actual, string path)
    {
        switch (expected)
        {
            case null:
                Assert.True(actual is null, $"{path}: expected null, got {actual?.ToJsonString()}");
                break;
            case JsonObject e:
                var a = Assert.IsType<JsonObject>(actual);
                Assert.True(
                    e.Select(p => p.Key).Order(StringComparer.Ordinal).SequenceEqual(a.Select(p => p.Key).Order(StringComparer.Ordinal)),
                    $"{path}: keys differ: expected [{string.Join(", ", e.Select(p => p.Key))}], got [{string.Join(", ", a.Select(p => p.Key))}]");
                foreach (var (key, value) in e)
                {
                    AssertSameTree(value, a[key], $"{path}.{key}");
                }
                break;
            case JsonArray e:
                var array = Assert.IsType<JsonArray>(actual);
                Assert.True(e.Count == array.Count, $"{path}: expected {e.Count} items, got {array.Count}");
                for (var i = 0; i < e.Count; i++)
                {
                    AssertSameTree(e[i], array[i], $"{path}[{i}]");
                }
                break;
            default:
                var expectedValue = expected.AsValue();
                Assert.True(actual is JsonValue, $"{path}: expected {expected.ToJsonString()}, got {actual?.ToJsonString() ?? "nothing"}");
                if (expectedValue.GetValueKind() == JsonValueKind.Number || IsNonFiniteText(expectedValue))
                {
                    AssertClose(Number(expected), Number(actual), path);
                }
                else
                {
                    Assert.True(expected.ToJsonString() == actual!.ToJsonString(), $"{path}: expected {expected.ToJsonString()}, got {actual.ToJsonString()}");
                }
                break;
        }
    }

    /// <summary>
    /// <see cref="LeptonJson.Options"/> (same names, same shape) except that non-finite numbers are
    /// written as the vectors write them, <c>"inf"</c>/<c>"nan"</c>, so they can be compared.
    /// </summary>
    public static readonly JsonSerializerOptions VectorStyle = CreateVectorStyle();

    private static JsonSerializerOptions CreateVectorStyle()
    {
        var options = new JsonSerializerOptions(LeptonJson.Options);
        options.Converters.Insert(0, new NonFiniteAsTextConverter());
        options.MakeReadOnly(populateMissingResolver: true);
        return options;
    }

    private static bool IsNonFiniteText(JsonValue value) =>
        value.TryGetValue<string>(out var text) && text is "inf" or "-inf" or "nan";

    private static JsonObject Load(string file) => JsonNode.Parse(File.ReadAllText(OutputCopy(file)))!.AsObject();

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Lepton.Functions.sln")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException($"no Lepton.Functions.sln above {AppContext.BaseDirectory}");
    }

    private sealed class NonFiniteAsTextConverter : JsonConverter<double>
    {
        public override double Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            reader.TokenType == JsonTokenType.String
                ? reader.GetString() switch
                {
                    "inf" => double.PositiveInfinity,
                    "-inf" => double.NegativeInfinity,
                    _ => double.NaN,
                }
                : reader.GetDouble();

        public override void Write(Utf8JsonWriter writer, double value, JsonSerializerOptions options)
        {
            if (double.IsFinite(value))
            {
                writer.WriteNumberValue(value);
            }
            else
            {
                writer.WriteStringValue(double.IsNaN(value) ? "nan" : value > 0 ? "inf" : "-inf");
            }
        }
    }
}
