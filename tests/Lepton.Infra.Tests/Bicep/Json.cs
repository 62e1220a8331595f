using System.Text.Json.Nodes;

namespace Lepton.Infra.Tests.Bicep;

/// <summary>Walking compiled templates and snapshots with errors that name the missing path.</summary>
internal static class Json
{
    /// <summary>The node at <paramref name="path"/> (object properties, or array indexes as numbers).</summary>
    public static JsonNode Get(this JsonNode node, params string[] path)
    {
        var current = node;
        var walked = new List<string>();
        foreach (var step in path)
        {
            walked.Add(step);
            current = current switch
            {
                JsonObject obj => obj[step],
                JsonArray array when int.TryParse(step, out var index) && index < array.Count => array[index],
                _ => null,
            } ?? throw new KeyNotFoundException($"no '{string.Join('.', walked)}' in {Describe(node)}");
        }
        return current;
    }

    /// <summary>The node at <paramref name="path"/>, or null when any step is missing.</summary>
    public static JsonNode? Find(this JsonNode node, params string[] path)
    {
        JsonNode? current = node;
        foreach (var step in path)
        {
            current = current switch
            {
                JsonObject obj => obj[step],
                JsonArray array when int.TryParse(step, out var index) && index < array.Count => array[index],
                _ => null,
            };
        }
        return current;
    }

    /// <summary>
    /// The resources of a compiled template: an array in ARM language version 1, an object keyed by
    /// symbolic name in 2.0 (which Bicep emits when a template declares types).
    /// </summary>
    public static IReadOnlyList<JsonObject> TemplateResources(this JsonNode template) => template.Get("resources") switch
    {
        JsonArray array => array.Select(item => item!.AsObject()).ToList(),
        JsonObject symbolic => symbolic.Select(entry => entry.Value!.AsObject()).ToList(),
        var other => throw new InvalidOperationException($"resources is neither an array nor an object: {other.GetValueKind()}"),
    };

    public static string Text(this JsonNode node, params string[] path) => node.Get(path).GetValue<string>();

    public static IReadOnlyList<JsonObject> Objects(this JsonNode node, params string[] path) =>
        node.Get(path).AsArray().Select(item => item!.AsObject()).ToList();

    /// <summary>Every string anywhere under <paramref name="node"/>, property names included.</summary>
    public static IEnumerable<string> Strings(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject obj:
                foreach (var (name, value) in obj)
                {
                    yield return name;
                    foreach (var text in Strings(value))
                    {
                        yield return text;
                    }
                }
                break;
            case JsonArray array:
                foreach (var text in array.SelectMany(Strings))
                {
                    yield return text;
                }
                break;
            case JsonValue value when value.TryGetValue<string>(out var text):
                yield return text;
                break;
        }
    }

    private static string Describe(JsonNode node) =>
        node is JsonObject obj && obj["name"] is JsonValue name ? $"'{name}'" : node.GetPath();
}
