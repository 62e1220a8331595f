using System.Text.Json.Nodes;
using Lepton.Cli.Commands;
using Lepton.Cli.Views;
using Spectre.Console;

namespace Lepton.Cli.Tests;

public sealed class ViewsTests
{
    private static JsonObject Detail() => JsonNode.Parse("""
        {"model": "digits",
         "versions": [
           {"version": "1.0.0", "stage": "production", "reason": "evaluation gate passed; first version"},
           {"version": "1.1.0", "stage": "canary", "reason": ""},
           {"version": "1.2.0", "stage": "rolled_back", "reason": "candidate error rate 22% (44/200) vs production 0% (0/600) exceeds the tolerated 0.5% (always-valid p=8.8e-05 < 0.05)"}],
         "routes": {"model": "digits", "production": "1.0.0", "candidate": "1.1.0", "candidate_weight_bp": 2500,
                    "shadow": null, "shadow_fraction_bp": 0, "sticky_header": "x-user-id", "generation": 7}}
        """)!.AsObject();

    [Fact]
    public void The_model_view_fits_an_80_column_terminal_without_breaking_words()
    {
        var output = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(output), Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors });
        console.Profile.Width = 80;
        var lifecycles = new Dictionary<string, JsonNode?>
        {
            ["1.1.0"] = JsonNode.Parse("""{"runtime_status": "Running", "custom_status": {"phase": "canary", "step": 2, "steps": 3, "weight_bp": 2500, "decision": "continue"}}"""),
        };
        var stats = new Dictionary<string, VersionStats> { ["1.0.0"] = new(1500, 0.001, 2), ["1.1.0"] = new(500, 0.0, 3) };
        console.Write(ModelView.Render(Detail(), lifecycles, stats));
        var lines = output.ToString().Split('\n');
        Assert.All(lines, line => Assert.True(line.TrimEnd().Length <= 80, $"too wide: {line}"));
        var table = string.Join("\n", lines);
        Assert.Contains("canary 2/3 · continue", table);
        Assert.Contains("75%", table); // production's share
        Assert.Contains("routes: production=1.0.0, candidate=1.1.0 (25%), sticky=x-user-id, generation 7", table);
        // A long reason wraps as a sentence on its own lines, not one word per line.
        var reasonLines = lines.SkipWhile(l => !l.Contains("1.2.0:", StringComparison.Ordinal)).TakeWhile(l => l.Trim().Length > 0).ToList();
        Assert.InRange(reasonLines.Count, 1, 3);
    }

    [Theory]
    [InlineData("1.0.0", "75%")]
    [InlineData("1.1.0", "25%")]
    [InlineData("9.9.9", "")]
    public void Traffic_is_each_versions_share(string version, string expected) =>
        Assert.Equal(expected, ModelView.Traffic(version, Detail()["routes"]!.AsObject()));

    [Fact]
    public void Route_settings_parse_into_a_patch_and_refuse_typos()
    {
        var patch = InspectCommands.ParseRouteSettings(["candidate=1.1.0", "candidate_weight_bp=500", "shadow=null"]);
        Assert.Equal("1.1.0", patch["candidate"]!.GetValue<string>());
        Assert.Equal(500, patch["candidate_weight_bp"]!.GetValue<int>());
        Assert.True(patch.ContainsKey("shadow"));
        Assert.Null(patch["shadow"]);
        Assert.Contains("use key=value with key one of", Assert.Throws<Shared.InvalidInputException>(() => InspectCommands.ParseRouteSettings(["candidat=1"])).Message);
        Assert.Contains("whole number of basis points", Assert.Throws<Shared.InvalidInputException>(() => InspectCommands.ParseRouteSettings(["candidate_weight_bp=half"])).Message);
    }
}
