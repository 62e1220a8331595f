using System.Diagnostics;

namespace Lepton.Infra.Tests.Scripts;

/// <summary>
/// infra/scripts/create-blob-subscription.sh, the post-deploy step that subscribes the blob trigger
/// to BlobCreated events for model files. The Azure CLI cannot reach Azure from here, so a stand-in
/// <c>az</c> first on PATH answers the script's queries as the real CLI does (tsv values) and
/// records every call; the script itself runs in real bash.
/// </summary>
public sealed class BlobSubscriptionScriptTests : IDisposable
{
    private static readonly string Script = Repository.At("infra", "scripts", "create-blob-subscription.sh");

    private const string FakeAz = """
        #!/usr/bin/env bash
        printf '%s\x1f' "$@" >> "$AZ_LOG"; echo >> "$AZ_LOG"
        case "$1 $2" in
          "deployment group")
            case "$*" in
              *functionAppName*) echo lepton-dev-func-abc ;;
              *eventGridSystemTopicName*) echo stleptonabc-events ;;
            esac ;;
          "functionapp function") echo "${FAKE_FUNCTION-}" ;;
          "functionapp keys") echo "${FAKE_KEY-}" ;;
          "functionapp show") echo lepton-dev-func-abc.azurewebsites.net ;;
        esac
        """;

    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("lepton-az-");

    public void Dispose() => _dir.Delete(recursive: true);

    private async Task<(int ExitCode, string Stdout, string Stderr, List<string[]> Calls)> RunAsync(
        string key = "s3cr3t", string function = "lepton-dev-func-abc/OnModelUploaded", params string[] arguments)
    {
        var bin = _dir.CreateSubdirectory("bin");
        var az = Path.Combine(bin.FullName, "az");
        await File.WriteAllTextAsync(az, FakeAz.Replace("\r\n", "\n", StringComparison.Ordinal) + "\n", TestContext.Current.CancellationToken);
        if (OperatingSystem.IsWindows())
        {
            throw new PlatformNotSupportedException("the script and its stand-in az are bash: run on Linux");
        }
        File.SetUnixFileMode(az, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var log = Path.Combine(_dir.FullName, "az.log");
        await File.WriteAllTextAsync(log, "", TestContext.Current.CancellationToken);

        var start = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Script);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        start.Environment["PATH"] = $"{bin.FullName}{Path.PathSeparator}{Environment.GetEnvironmentVariable("PATH")}";
        start.Environment["AZ_LOG"] = log;
        start.Environment["FAKE_KEY"] = key;
        start.Environment["FAKE_FUNCTION"] = function;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        // The script makes a handful of calls to the stand-in: a minute is ample on a loaded machine.
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        limit.CancelAfter(TimeSpan.FromMinutes(1));
        try
        {
            await process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }
        var calls = (await File.ReadAllLinesAsync(log, TestContext.Current.CancellationToken))
            .Select(line => line.Split('\x1f')[..^1]).ToList();
        return (process.ExitCode, await stdout, await stderr, calls);
    }

    private static string Option(string[] call, string name) => call[Array.IndexOf(call, name) + 1];

    [Fact]
    public async Task The_script_is_valid_bash()
    {
        using var process = Process.Start(new ProcessStartInfo("bash", ["-n", Script]))!;
        await process.WaitForExitAsync(TestContext.Current.CancellationToken);
        Assert.Equal(0, process.ExitCode);
    }

    [Fact]
    public async Task It_subscribes_the_blob_trigger_to_model_files_only_and_never_prints_the_key()
    {
        var (exit, stdout, stderr, calls) = await RunAsync(arguments: ["--resource-group", "rg-lepton"]);
        Assert.True(exit == 0, stderr);
        var create = Assert.Single(calls, c => c is ["eventgrid", "system-topic", "event-subscription", "create", ..]);
        Assert.Equal("rg-lepton", Option(create, "--resource-group"));
        Assert.Equal("stleptonabc-events", Option(create, "--system-topic-name"));
        Assert.Equal("webhook", Option(create, "--endpoint-type"));
        Assert.Equal(
            "https://lepton-dev-func-abc.azurewebsites.net/runtime/webhooks/blobs?functionName=Host.Functions.OnModelUploaded&code=s3cr3t",
            Option(create, "--endpoint"));
        Assert.Equal("Microsoft.Storage.BlobCreated", Option(create, "--included-event-types"));
        Assert.Equal("/blobServices/default/containers/models/blobs/", Option(create, "--subject-begins-with"));
        Assert.Equal("model.onnx", Option(create, "--subject-ends-with"));
        // The trigger is found by its binding, in either casing the host reports.
        var list = Assert.Single(calls, c => c is ["functionapp", "function", "list", ..]);
        Assert.Contains("source=='EventGrid' || Source=='EventGrid'", Option(list, "--query"), StringComparison.Ordinal);
        // The key travels only to Event Grid, never to the terminal or a CI log.
        Assert.DoesNotContain("s3cr3t", stdout + stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Explicit_names_skip_the_deployment_lookup()
    {
        var (exit, _, stderr, calls) = await RunAsync(arguments:
            ["-g", "rg", "--function-app", "app1", "--system-topic", "topic1", "--function-name", "BlobFn"]);
        Assert.True(exit == 0, stderr);
        Assert.DoesNotContain(calls, c => c is ["deployment", "group", ..] or ["functionapp", "function", ..]);
        var create = Assert.Single(calls, c => c is ["eventgrid", ..]);
        Assert.Contains("functionName=Host.Functions.BlobFn&", Option(create, "--endpoint"), StringComparison.Ordinal);
        Assert.Equal("topic1", Option(create, "--system-topic-name"));
    }

    [Fact]
    public async Task It_refuses_until_the_blobs_extension_key_exists()
    {
        var (exit, _, stderr, calls) = await RunAsync(key: "", arguments: ["-g", "rg-lepton"]);
        Assert.Equal(1, exit);
        Assert.Contains("no blobs_extension system key yet", stderr, StringComparison.Ordinal);
        Assert.Contains("publish the code", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain(calls, c => c is ["eventgrid", ..]);
    }

    [Fact]
    public async Task It_refuses_when_no_Event_Grid_blob_trigger_is_deployed()
    {
        var (exit, _, stderr, calls) = await RunAsync(function: "", arguments: ["-g", "rg-lepton"]);
        Assert.Equal(1, exit);
        Assert.Contains("no blob trigger with source EventGrid", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain(calls, c => c is ["eventgrid", ..]);
    }

    [Fact]
    public async Task The_resource_group_is_required()
    {
        var (exit, _, stderr, calls) = await RunAsync();
        Assert.Equal(1, exit);
        Assert.Contains("--resource-group is required", stderr, StringComparison.Ordinal);
        Assert.Contains("Usage:", stderr, StringComparison.Ordinal);
        Assert.Empty(calls);
    }
}
