using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Lepton.Bench;

/// <summary>A request body for wrk: bytes plus the headers that go with them.</summary>
public sealed record Body(byte[] Bytes, string ContentType, int? HeaderLength = null);

/// <summary>What one wrk run measured.</summary>
public sealed record LoadResult(double RequestsPerSecond, double P50Ms, double P99Ms, long Requests, long Failed);

/// <summary>Runs Debian's <c>wrk</c> pinned to its own core with a Lua script that posts a fixed body.</summary>
public static partial class Wrk
{
    [GeneratedRegex(@"Requests/sec:\s+([0-9.]+)")]
    private static partial Regex Rate();

    [GeneratedRegex(@"^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$", RegexOptions.Multiline)]
    private static partial Regex Percentile();

    [GeneratedRegex(@"([0-9]+) requests in")]
    private static partial Regex Count();

    [GeneratedRegex(@"Non-2xx or 3xx responses:\s+([0-9]+)")]
    private static partial Regex Non2xx();

    [GeneratedRegex(@"Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+)")]
    private static partial Regex SocketErrors();

    public static bool Installed() => File.Exists("/usr/bin/wrk") || File.Exists("/usr/local/bin/wrk");

    public static string Script(string directory, string name, Body body)
    {
        var bodyPath = Path.Combine(directory, name + ".body");
        File.WriteAllBytes(bodyPath, body.Bytes);
        var script = Path.Combine(directory, name + ".lua");
        var header = body.HeaderLength is { } length ? $"wrk.headers[\"Inference-Header-Content-Length\"] = \"{length}\"\n" : "";
        File.WriteAllText(script, $"""
            wrk.method = "POST"
            local f = io.open("{bodyPath}", "rb")
            wrk.body = f:read("*all")
            f:close()
            wrk.headers["Content-Type"] = "{body.ContentType}"
            {header}
            """);
        return script;
    }

    public static async Task<LoadResult> RunAsync(string url, string script, int connections, double seconds, int? cpu)
    {
        var arguments = new List<string>();
        var file = "wrk";
        if (cpu is { } core)
        {
            file = "taskset";
            arguments.AddRange(["-c", core.ToString(CultureInfo.InvariantCulture), "wrk"]);
        }
        arguments.AddRange(["-t1", $"-c{connections}", $"-d{seconds.ToString(CultureInfo.InvariantCulture)}s", "--latency", "-s", script, url]);
        var start = new ProcessStartInfo(file, arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(start)!;
        var output = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"wrk failed: {output}{await process.StandardError.ReadToEndAsync()}");
        }
        double Ms(Match m) => double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture) * m.Groups[3].Value switch { "us" => 0.001, "ms" => 1, _ => 1000 };
        var percentiles = Percentile().Matches(output).ToDictionary(m => m.Groups[1].Value, Ms);
        var socket = SocketErrors().Match(output);
        var failed = (Non2xx().Match(output) is { Success: true } n ? long.Parse(n.Groups[1].Value, CultureInfo.InvariantCulture) : 0)
            + (socket.Success ? Enumerable.Range(1, 4).Sum(i => long.Parse(socket.Groups[i].Value, CultureInfo.InvariantCulture)) : 0);
        return new LoadResult(
            double.Parse(Rate().Match(output).Groups[1].Value, CultureInfo.InvariantCulture),
            percentiles.GetValueOrDefault("50"),
            percentiles.GetValueOrDefault("99"),
            long.Parse(Count().Match(output).Groups[1].Value, CultureInfo.InvariantCulture),
            failed);
    }
}
