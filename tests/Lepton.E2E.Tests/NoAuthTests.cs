using System.Text.RegularExpressions;
using Lepton.Cli.LocalStack;
using Lepton.E2E.Tests.Harness;
using Lepton.Testing;

namespace Lepton.E2E.Tests;

/// <summary><c>lepton dev --no-auth</c>: no key is written, and every caller is answered without one.</summary>
public sealed class NoAuthTests
{
    [Fact(Timeout = 180_000)]
    public async Task A_no_auth_stack_writes_no_key_and_answers_callers_without_one()
    {
        var token = TestContext.Current.CancellationToken;
        await using var stack = await StackProcess.StartAsync(new StackOptions { NoAuth = true }, token);
        Assert.False(File.Exists(Path.Combine(stack.DataDir, ApiKeyFile.FileName)));
        Assert.Contains("none (--no-auth)", stack.Output);
        var model = TestNames.Model("open");
        await Lifecycles.SeedProductionAsync(stack, model, token);

        // No key anywhere: no --key, no LEPTON_API_KEY, and no key file where the CLI looks.
        var nokey = Directory.CreateTempSubdirectory("lepton-e2e-nokey-").FullName;
        try
        {
            var environment = new Dictionary<string, string?> { ["LEPTON_DEV_DATA_DIR"] = nokey };
            var status = await stack.LeptonAsync(["status", model], environment, cancellationToken: token);
            Assert.True(status.ExitCode == 0, status.ToString());
            Assert.Contains("routes: production=1.0.0", status.Text);
            var infer = await stack.LeptonAsync(["infer", model, "--data", Lifecycles.RowJson()], environment, cancellationToken: token);
            Assert.True(infer.ExitCode == 0, infer.ToString());
            Assert.Contains("\"model_version\": \"1.0.0\"", infer.Text);
            var routes = await stack.LeptonAsync(["routes", model, "--set", "sticky_header=x-user-id"], environment, cancellationToken: token);
            Assert.True(routes.ExitCode == 0, routes.ToString());
            // Audited as the local user, since nobody authenticated.
            var history = await stack.LeptonAsync(["history", model], environment, cancellationToken: token);
            Assert.Contains(history.Lines, l => Regex.IsMatch(l, @"traffic\s+local"));
            history.AssertFitsIn80Columns();
        }
        finally
        {
            Directory.Delete(nokey, recursive: true);
        }
    }
}
