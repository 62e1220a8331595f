using System.Text.Json;
using System.Text.Json.Nodes;
using Lepton.Shared;
using Microsoft.AspNetCore.Http;

namespace Lepton.Functions.Http;

/// <summary>Reads a control API body: a JSON object of at most 64 KiB with only the fields a route allows.</summary>
public static class RequestBodies
{
    public const int MaxBytes = 64 * 1024;

    public static async Task<JsonObject> ReadObjectAsync(HttpRequest request, IReadOnlyCollection<string> allowed, CancellationToken cancellationToken)
    {
        if (request.ContentLength > MaxBytes)
        {
            throw new PayloadTooLargeException($"request body is larger than {MaxBytes} bytes");
        }
        using var buffer = new MemoryStream();
        var chunk = new byte[8192];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, cancellationToken)) > 0)
        {
            if (buffer.Length + read > MaxBytes)
            {
                throw new PayloadTooLargeException($"request body is larger than {MaxBytes} bytes");
            }
            buffer.Write(chunk, 0, read);
        }
        if (buffer.Length == 0 || buffer.ToArray().All(b => b is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n'))
        {
            return [];
        }
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(buffer.ToArray());
        }
        catch (JsonException error)
        {
            throw new InvalidInputException($"request body is not valid JSON (line {(error.LineNumber ?? 0) + 1}, position {(error.BytePositionInLine ?? 0) + 1})");
        }
        if (node is not JsonObject body)
        {
            throw new InvalidInputException("request body must be a JSON object");
        }
        if (body.ContainsKey("actor"))
        {
            throw new InvalidInputException(
                "'actor' is not accepted in the body: the audit trail names the caller from its credentials (function key name or Entra principal); remove the field");
        }
        var unknown = body.Select(p => p.Key).Where(k => !allowed.Contains(k)).Order(StringComparer.Ordinal).ToList();
        if (unknown.Count > 0)
        {
            throw new InvalidInputException(
                $"unknown field(s) {string.Join(", ", unknown)}; allowed: {(allowed.Count == 0 ? "none" : string.Join(", ", allowed.Order(StringComparer.Ordinal)))}");
        }
        return body;
    }

    /// <summary>A string field (or <paramref name="fallback"/> when absent).</summary>
    public static string Text(JsonObject body, string name, string fallback)
    {
        if (!body.TryGetPropertyValue(name, out var node) || node is null)
        {
            return fallback;
        }
        return node is JsonValue value && value.GetValueKind() == JsonValueKind.String
            ? value.GetValue<string>()
            : throw new InvalidInputException($"{name} must be a string, got {node.ToJsonString()}");
    }
}
