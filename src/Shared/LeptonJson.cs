using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Lepton.Shared;

/// <summary>
/// The JSON conventions of every document Lepton writes or accepts: snake_case names (the
/// reference's wire format, and what KServe/Triton users read), enums as their snake_case names,
/// numbers as numbers, and NaN/infinities written as <c>null</c> (strict JSON: an idle version has
/// no p95, a p95 past the last histogram bucket is infinite) and read back as NaN.
/// </summary>
public static class LeptonJson
{
    /// <summary>Options for API bodies, stored JSON columns, orchestration payloads and reports.</summary>
    public static readonly JsonSerializerOptions Options = Create(indented: false);

    /// <summary>The same, indented (reports, manifests, CLI output).</summary>
    public static readonly JsonSerializerOptions Indented = Create(indented: true);

    private static JsonSerializerOptions Create(bool indented)
    {
        var options = new JsonSerializerOptions
        {
            PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
            WriteIndented = indented,
            NumberHandling = JsonNumberHandling.Strict,
            // Messages quote user-facing text; keep it readable (no \u0027 for ').
            Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        };
        options.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower, allowIntegerValues: false));
        options.Converters.Add(new NonFiniteAsNullConverter());
        options.MakeReadOnly(populateMissingResolver: true);
        return options;
    }

    public static string Serialize<T>(T value) => JsonSerializer.Serialize(value, Options);

    public static T Deserialize<T>(string json) =>
        JsonSerializer.Deserialize<T>(json, Options)
        ?? throw new InvalidInputException($"expected a JSON {typeof(T).Name}, got null");

    /// <summary>Writes NaN and infinities as <c>null</c>; reads <c>null</c> as NaN.</summary>
    private sealed class NonFiniteAsNullConverter : JsonConverter<double>
    {
        public override bool HandleNull => true;

        public override double Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            reader.TokenType == JsonTokenType.Null ? double.NaN : reader.GetDouble();

        public override void Write(Utf8JsonWriter writer, double value, JsonSerializerOptions options)
        {
            if (double.IsFinite(value))
            {
                writer.WriteNumberValue(value);
            }
            else
            {
                writer.WriteNullValue();
            }
        }
    }
}
