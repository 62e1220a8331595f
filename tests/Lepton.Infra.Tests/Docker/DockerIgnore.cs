using System.Text;
using System.Text.RegularExpressions;

namespace Lepton.Infra.Tests.Docker;

/// <summary>
/// A .dockerignore, matched the way Docker's build context does it: patterns in order, the last
/// one that matches a path (or any folder above it) decides, <c>!</c> re-includes, <c>*</c> and
/// <c>?</c> stay within one path segment, <c>**</c> spans any number of them, a trailing or leading
/// <c>/</c> is dropped.
/// </summary>
internal sealed class DockerIgnore
{
    private readonly IReadOnlyList<(bool Include, string Pattern, Regex Regex)> _rules;

    private DockerIgnore(IReadOnlyList<(bool, string, Regex)> rules) => _rules = rules;

    /// <summary>The patterns as written, in order (negations with their <c>!</c>).</summary>
    public IReadOnlyList<string> Patterns => _rules.Select(r => (r.Include ? "!" : "") + r.Pattern).ToList();

    public static DockerIgnore Parse(string text) => new(text.Split('\n')
        .Select(line => line.Trim())
        .Where(line => line.Length > 0 && !line.StartsWith('#'))
        .Select(line =>
        {
            var include = line.StartsWith('!');
            var pattern = (include ? line[1..] : line).Trim().Trim('/');
            return (include, pattern, ToRegex(pattern));
        })
        .ToList());

    /// <summary>Whether a path of the context ('/'-separated, relative to its root) stays out of the build.</summary>
    public bool Excludes(string path)
    {
        var candidates = Prefixes(path).ToList();
        var excluded = false;
        foreach (var (include, _, regex) in _rules)
        {
            if (candidates.Any(regex.IsMatch))
            {
                excluded = !include;
            }
        }
        return excluded;
    }

    /// <summary>The files under <paramref name="root"/> a build would send (.git aside), relative and '/'-separated.</summary>
    public IEnumerable<string> ContextFiles(string root)
    {
        var pending = new Stack<string>([root]);
        while (pending.TryPop(out var dir))
        {
            foreach (var file in Directory.EnumerateFiles(dir))
            {
                var relative = Relative(root, file);
                if (!Excludes(relative))
                {
                    yield return relative;
                }
            }
            foreach (var sub in Directory.EnumerateDirectories(dir))
            {
                var relative = Relative(root, sub);
                // An excluded folder is walked only if a re-include could reach inside it.
                if (relative != ".git" && (!Excludes(relative) || _rules.Any(r => r.Include && r.Pattern.StartsWith(relative + "/", StringComparison.Ordinal))))
                {
                    pending.Push(sub);
                }
            }
        }
    }

    private static string Relative(string root, string path) => Path.GetRelativePath(root, path).Replace('\\', '/');

    private static IEnumerable<string> Prefixes(string path)
    {
        var parts = path.Split('/');
        for (var i = 1; i <= parts.Length; i++)
        {
            yield return string.Join('/', parts.Take(i));
        }
    }

    private static Regex ToRegex(string pattern)
    {
        var regex = new StringBuilder("^");
        var segments = pattern.Split('/');
        for (var i = 0; i < segments.Length; i++)
        {
            var last = i == segments.Length - 1;
            if (segments[i] == "**")
            {
                regex.Append(last ? ".*" : "(?:[^/]+/)*");
                continue;
            }
            foreach (var c in segments[i])
            {
                regex.Append(c switch
                {
                    '*' => "[^/]*",
                    '?' => "[^/]",
                    _ => Regex.Escape(c.ToString()),
                });
            }
            if (!last)
            {
                regex.Append('/');
            }
        }
        return new Regex(regex.Append('$').ToString(), RegexOptions.CultureInvariant);
    }
}
