using System.Text;
using System.Text.Json;

namespace Lepton.Infra.Tests.Docker;

/// <summary>One instruction: its keyword (upper case), its arguments with continuations joined, its first line.</summary>
internal sealed record DockerInstruction(string Keyword, string Arguments, int Line)
{
    /// <summary>The exec (JSON array) form of CMD, ENTRYPOINT or HEALTHCHECK CMD, or null for the shell form.</summary>
    public static IReadOnlyList<string>? ExecForm(string arguments)
    {
        var text = arguments.Trim();
        if (!text.StartsWith('['))
        {
            return null;
        }
        try
        {
            return JsonSerializer.Deserialize<string[]>(text);
        }
        catch (JsonException)
        {
            return null; // Docker runs a malformed array as a shell command.
        }
    }
}

/// <summary>A build stage: the image it starts from, its name (<c>AS name</c>), its instructions.</summary>
internal sealed record DockerStage(string BaseImage, string? Name, IReadOnlyList<DockerInstruction> Instructions)
{
    public IEnumerable<string> Arguments(string keyword) =>
        Instructions.Where(i => i.Keyword == keyword).Select(i => i.Arguments);

    /// <summary>The variables ENV sets in this stage, in order (later wins).</summary>
    public IReadOnlyDictionary<string, string> Environment()
    {
        var variables = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var arguments in Arguments("ENV"))
        {
            foreach (var (name, value) in Dockerfile.EnvPairs(arguments))
            {
                variables[name] = value;
            }
        }
        return variables;
    }
}

/// <summary>
/// The parts of the Dockerfile syntax the image checks need (no Dockerfile parser exists on NuGet
/// here, and no Docker engine runs): parser directives and comment lines dropped, lines ending in
/// the escape character joined, instructions grouped into stages by FROM, ARGs before the first
/// FROM kept apart. Only the default escape character (<c>\</c>) is supported.
/// </summary>
internal static class Dockerfile
{
    public static (IReadOnlyList<DockerInstruction> GlobalArgs, IReadOnlyList<DockerStage> Stages) Parse(string text)
    {
        var instructions = new List<DockerInstruction>();
        var pending = new StringBuilder();
        var start = 0;
        var lines = text.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i];
            var trimmed = line.Trim();
            if (trimmed.StartsWith('#'))
            {
                if (trimmed.StartsWith("# escape=", StringComparison.OrdinalIgnoreCase) && !trimmed.EndsWith('\\'))
                {
                    throw new NotSupportedException($"line {i + 1}: only the default escape character is supported");
                }
                continue; // comments, also inside a continued instruction
            }
            if (pending.Length == 0)
            {
                if (trimmed.Length == 0)
                {
                    continue;
                }
                start = i + 1;
            }
            if (line.TrimEnd().EndsWith('\\'))
            {
                pending.Append(line.TrimEnd()[..^1]);
                continue;
            }
            pending.Append(line);
            var whole = pending.ToString().Trim();
            pending.Clear();
            var space = whole.IndexOfAny([' ', '\t']);
            var keyword = (space < 0 ? whole : whole[..space]).ToUpperInvariant();
            var arguments = space < 0 ? "" : whole[(space + 1)..].Trim();
            instructions.Add(new DockerInstruction(keyword, arguments, start));
        }
        if (pending.Length > 0)
        {
            throw new FormatException($"line {start}: the file ends inside a continued instruction");
        }

        var globalArgs = instructions.TakeWhile(i => i.Keyword != "FROM").ToList();
        if (globalArgs.Any(i => i.Keyword != "ARG"))
        {
            throw new FormatException($"line {globalArgs.First(i => i.Keyword != "ARG").Line}: only ARG may come before the first FROM");
        }
        var stages = new List<DockerStage>();
        foreach (var instruction in instructions.Skip(globalArgs.Count))
        {
            if (instruction.Keyword == "FROM")
            {
                var words = instruction.Arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries)
                    .Where(w => !w.StartsWith("--", StringComparison.Ordinal)).ToArray();
                var name = words.Length == 3 && words[1].Equals("AS", StringComparison.OrdinalIgnoreCase) ? words[2] : null;
                if (words.Length is not (1 or 3) || (words.Length == 3 && name is null))
                {
                    throw new FormatException($"line {instruction.Line}: FROM needs an image and optionally AS <name>");
                }
                stages.Add(new DockerStage(words[0], name, []));
            }
            else
            {
                var last = stages[^1];
                stages[^1] = last with { Instructions = [.. last.Instructions, instruction] };
            }
        }
        return (globalArgs, stages);
    }

    /// <summary>The <c>name=value</c> pairs of an ENV (double quotes and backslash escapes honoured; the legacy <c>ENV name value</c> too).</summary>
    public static IEnumerable<(string Name, string Value)> EnvPairs(string arguments)
    {
        var words = Words(arguments).ToList();
        if (words.Count > 0 && !words[0].Contains('=', StringComparison.Ordinal))
        {
            yield return (words[0], string.Join(' ', words.Skip(1)));
            yield break;
        }
        foreach (var word in words)
        {
            var equals = word.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0)
            {
                throw new FormatException($"ENV '{arguments}': '{word}' is not name=value");
            }
            yield return (word[..equals], word[(equals + 1)..]);
        }
    }

    private static IEnumerable<string> Words(string text)
    {
        var word = new StringBuilder();
        var quote = '\0';
        var inWord = false;
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (quote == '\0' && char.IsWhiteSpace(c))
            {
                if (inWord)
                {
                    yield return word.ToString();
                    word.Clear();
                    inWord = false;
                }
                continue;
            }
            inWord = true;
            if (c == '\\' && quote != '\'' && i + 1 < text.Length)
            {
                word.Append(text[++i]);
            }
            else if (quote == '\0' && c is '"' or '\'')
            {
                quote = c;
            }
            else if (c == quote)
            {
                quote = '\0';
            }
            else
            {
                word.Append(c);
            }
        }
        if (quote != '\0')
        {
            throw new FormatException($"unterminated quote in '{text}'");
        }
        if (inWord)
        {
            yield return word.ToString();
        }
    }
}
