using Lepton.Shared.Registry;

namespace Lepton.Shared.Validation;

/// <summary>
/// Whether a candidate's signature still serves production's callers: every production input still
/// exists with the same dtype and a shape that accepts what it accepted before, no new input is
/// required, and every production output is still produced with the same dtype and rank.
/// </summary>
public static class SignatureCompatibility
{
    /// <summary>Problems that would break production callers; empty when compatible.</summary>
    public static IReadOnlyList<string> Problems(Signature candidate, Signature production)
    {
        var problems = new List<string>();
        var inputs = candidate.Inputs.ToDictionary(t => t.Name, StringComparer.Ordinal);
        foreach (var old in production.Inputs)
        {
            if (inputs.TryGetValue(old.Name, out var now))
            {
                problems.AddRange(SpecProblems("input", old, now));
            }
            else
            {
                problems.Add($"input {ModelName.Quote(old.Name)} is missing");
            }
        }
        var extra = inputs.Keys.Except(production.Inputs.Select(t => t.Name), StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        if (extra.Count > 0)
        {
            problems.Add($"new required input(s) {string.Join(", ", extra.Select(e => ModelName.Quote(e)))} that callers do not send");
        }
        var outputs = candidate.Outputs.ToDictionary(t => t.Name, StringComparer.Ordinal);
        foreach (var old in production.Outputs)
        {
            if (outputs.TryGetValue(old.Name, out var now))
            {
                problems.AddRange(SpecProblems("output", old, now));
            }
            else
            {
                problems.Add($"output {ModelName.Quote(old.Name)} is missing");
            }
        }
        return problems;
    }

    /// <summary><c>[None, 64]</c>: a shape as the messages show it.</summary>
    public static string Show(IReadOnlyList<long?> shape) =>
        "[" + string.Join(", ", shape.Select(d => d is { } n ? n.ToString(System.Globalization.CultureInfo.InvariantCulture) : "None")) + "]";

    private static IEnumerable<string> SpecProblems(string kind, TensorSpec old, TensorSpec now)
    {
        var name = ModelName.Quote(old.Name);
        if (old.Dtype != now.Dtype)
        {
            return [$"{kind} {name} dtype changed from {old.Dtype} to {now.Dtype}"];
        }
        if (old.Shape.Count != now.Shape.Count)
        {
            return [$"{kind} {name} rank changed from {Show(old.Shape)} to {Show(now.Shape)}"];
        }
        for (var i = 0; i < old.Shape.Count; i++)
        {
            var (a, b) = (old.Shape[i], now.Shape[i]);
            if (a is not null && b is not null && a != b)
            {
                return [$"{kind} {name} shape changed from {Show(old.Shape)} to {Show(now.Shape)}"];
            }
            if (a is null && b is not null && kind == "input")
            {
                return [$"{kind} {name} fixed a dimension callers vary: {Show(old.Shape)} → {Show(now.Shape)}"];
            }
        }
        return [];
    }
}
