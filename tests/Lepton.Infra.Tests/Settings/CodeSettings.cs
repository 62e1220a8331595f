using System.Reflection;
using System.Text.RegularExpressions;
using Lepton.Shared.Configuration;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Lepton.Infra.Tests.Settings;

/// <summary>A setting name the code reads, and the first place it does.</summary>
internal sealed record SettingRead(string Name, string Where);

/// <summary>
/// The setting names a body of C# code reads, found with Roslyn's parser (so comments and XML docs
/// never count, and only real string literals and member accesses do):
/// <list type="bullet">
/// <item>string literals that are a whole setting name: <c>AzureWebJobsStorage</c> and its
/// <c>__</c> (or <c>:</c>) children, <c>AzureFunctionsJobHost__*</c>, <c>APPLICATIONINSIGHTS_*</c>,
/// <c>FUNCTIONS_*</c>, <c>LEPTON_*</c>, <c>AZURE_*</c>; a binding expression <c>%NAME%</c> counts
/// as NAME; a prefix such as <c>"LEPTON_WORKER_"</c> names no setting and counts for nothing;</item>
/// <item>member accesses <c>AppSettingNames.X</c>, resolved to the constant's value from the
/// compiled Lepton.Shared (<c>AppSettingNames.All</c> is every one of them);</item>
/// <item>the identifiers the code uses, so that <see cref="SharedCode"/> can follow them into
/// Lepton.Shared.</item>
/// </list>
/// </summary>
internal sealed partial class CodeSettings
{
    private CodeSettings(IReadOnlyList<SettingRead> reads, IReadOnlySet<string> identifiers)
    {
        Reads = reads;
        Identifiers = identifiers;
    }

    /// <summary>Every setting read, once, with its first location.</summary>
    public IReadOnlyList<SettingRead> Reads { get; }

    /// <summary>Every identifier (type, member, local) the code names.</summary>
    public IReadOnlySet<string> Identifiers { get; }

    /// <summary>The constants of <see cref="AppSettingNames"/>: field name to setting name.</summary>
    public static IReadOnlyDictionary<string, string> AppSettingConstants { get; } = typeof(AppSettingNames)
        .GetFields(BindingFlags.Public | BindingFlags.Static)
        .Where(f => f.IsLiteral && f.FieldType == typeof(string))
        .ToDictionary(f => f.Name, f => (string)f.GetRawConstantValue()!, StringComparer.Ordinal);

    /// <summary>Scans every .cs file under <paramref name="folder"/> (bin and obj excluded); empty when the folder does not exist.</summary>
    public static CodeSettings Scan(string folder) => Scan(SourceFiles(folder).Select(f => (f, File.ReadAllText(f))));

    public static CodeSettings Scan(IEnumerable<(string Path, string Text)> files)
    {
        var reads = new Dictionary<string, SettingRead>(StringComparer.Ordinal);
        var identifiers = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (path, text) in files)
        {
            var where = Path.GetRelativePath(Repository.Root, path).Replace('\\', '/');
            var root = CSharpSyntaxTree.ParseText(text, path: path).GetRoot();
            foreach (var (name, line) in SettingsIn(root))
            {
                reads.TryAdd(name, new SettingRead(name, $"{where}:{line}"));
            }
            identifiers.UnionWith(root.DescendantNodes().OfType<SimpleNameSyntax>().Select(n => n.Identifier.ValueText));
        }
        return new CodeSettings(reads.Values.OrderBy(r => r.Name, StringComparer.Ordinal).ToList(), identifiers);
    }

    /// <summary>The setting names in one syntax tree (or node), with their 1-based lines.</summary>
    public static IEnumerable<(string Name, int Line)> SettingsIn(SyntaxNode root)
    {
        foreach (var token in root.DescendantTokens())
        {
            if (token.IsKind(SyntaxKind.StringLiteralToken) || token.IsKind(SyntaxKind.InterpolatedStringTextToken)
                || token.IsKind(SyntaxKind.SingleLineRawStringLiteralToken) || token.IsKind(SyntaxKind.MultiLineRawStringLiteralToken)
                || token.IsKind(SyntaxKind.Utf8StringLiteralToken))
            {
                if (SettingName(token.ValueText) is { } name)
                {
                    yield return (name, Line(token));
                }
            }
        }
        foreach (var access in root.DescendantNodes().OfType<MemberAccessExpressionSyntax>())
        {
            if (access.Expression is not (IdentifierNameSyntax { Identifier.ValueText: nameof(AppSettingNames) }
                or MemberAccessExpressionSyntax { Name.Identifier.ValueText: nameof(AppSettingNames) }))
            {
                continue;
            }
            var member = access.Name.Identifier.ValueText;
            if (member == nameof(AppSettingNames.All))
            {
                foreach (var name in AppSettingNames.All)
                {
                    yield return (name, Line(access.GetFirstToken()));
                }
            }
            else if (AppSettingConstants.TryGetValue(member, out var name))
            {
                yield return (name, Line(access.GetFirstToken()));
            }
        }
    }

    /// <summary>The setting a literal names, in its environment-variable form (<c>A__b</c>), or null.</summary>
    public static string? SettingName(string literal)
    {
        var binding = BindingExpression().Match(literal);
        var candidate = (binding.Success ? binding.Groups["name"].Value : literal).Replace(":", "__", StringComparison.Ordinal);
        return SettingNamePattern().IsMatch(candidate) ? candidate : null;
    }

    public static IEnumerable<string> SourceFiles(string folder) => Directory.Exists(folder)
        ? Directory.EnumerateFiles(folder, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Split(Path.DirectorySeparatorChar).Any(part => part is "bin" or "obj"))
            .Order(StringComparer.Ordinal)
        : [];

    private static int Line(SyntaxToken token) => token.GetLocation().GetLineSpan().StartLinePosition.Line + 1;

    // A whole name, never a prefix: the last character is a letter or digit.
    [GeneratedRegex(@"^(?:AzureWebJobsStorage(?:__[A-Za-z]+)?|AzureFunctionsJobHost(?:__[A-Za-z0-9]+)+|(?:APPLICATIONINSIGHTS|FUNCTIONS|LEPTON|AZURE)_[A-Z0-9_]*[A-Z0-9])$")]
    private static partial Regex SettingNamePattern();

    [GeneratedRegex(@"^%(?<name>[A-Za-z0-9_:]+)%$")]
    private static partial Regex BindingExpression();
}

/// <summary>
/// What Lepton.Shared reads on behalf of an app that uses it. An app reaches a Shared setting when
/// its code names a Shared type (<c>StorageOptions</c>, <c>ModelRegistry</c>, ...) or calls a
/// Shared extension method (<c>AddLeptonStorage</c>); from there every Shared type or extension
/// method that code names is followed in turn, and the settings read along the way are the app's.
/// <c>AppSettingNames</c> itself is not followed (its list is names, not reads).
/// </summary>
internal sealed class SharedCode
{
    private readonly Dictionary<string, List<Part>> _parts;

    private SharedCode(Dictionary<string, List<Part>> parts) => _parts = parts;

    private sealed record Part(IReadOnlyList<SettingRead> Reads, IReadOnlySet<string> Identifiers);

    public static SharedCode Load(string folder)
    {
        var parts = new Dictionary<string, List<Part>>(StringComparer.Ordinal);
        foreach (var path in CodeSettings.SourceFiles(folder))
        {
            var where = Path.GetRelativePath(Repository.Root, path).Replace('\\', '/');
            var root = CSharpSyntaxTree.ParseText(File.ReadAllText(path), path: path).GetRoot();
            foreach (var type in root.DescendantNodes().OfType<BaseTypeDeclarationSyntax>())
            {
                if (type.Identifier.ValueText == nameof(AppSettingNames) || type.Parent is BaseTypeDeclarationSyntax)
                {
                    continue;
                }
                Add(parts, type.Identifier.ValueText, type, where);
                // Extension methods are reached by their own name, not their class's.
                foreach (var method in type.DescendantNodes().OfType<MethodDeclarationSyntax>()
                    .Where(m => m.ParameterList.Parameters.FirstOrDefault()?.Modifiers.Any(SyntaxKind.ThisKeyword) == true))
                {
                    Add(parts, method.Identifier.ValueText, method, where);
                }
            }
        }
        return new SharedCode(parts);
    }

    /// <summary>The Shared settings reached from code that names <paramref name="identifiers"/>.</summary>
    public IReadOnlyList<SettingRead> ReachedFrom(IEnumerable<string> identifiers)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var pending = new Queue<string>(identifiers);
        var reads = new Dictionary<string, SettingRead>(StringComparer.Ordinal);
        while (pending.TryDequeue(out var name))
        {
            if (!_parts.TryGetValue(name, out var parts) || !seen.Add(name))
            {
                continue;
            }
            foreach (var part in parts)
            {
                foreach (var read in part.Reads)
                {
                    reads.TryAdd(read.Name, read);
                }
                foreach (var next in part.Identifiers)
                {
                    pending.Enqueue(next);
                }
            }
        }
        return reads.Values.OrderBy(r => r.Name, StringComparer.Ordinal).ToList();
    }

    private static void Add(Dictionary<string, List<Part>> parts, string name, SyntaxNode node, string where)
    {
        var reads = CodeSettings.SettingsIn(node).Select(s => new SettingRead(s.Name, $"{where}:{s.Line}")).ToList();
        var identifiers = node.DescendantNodes().OfType<SimpleNameSyntax>().Select(n => n.Identifier.ValueText).ToHashSet(StringComparer.Ordinal);
        if (!parts.TryGetValue(name, out var list))
        {
            parts[name] = list = [];
        }
        list.Add(new Part(reads, identifiers));
    }
}
