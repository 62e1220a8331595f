using System.Text.Json.Nodes;

namespace Lepton.Shared.Tests.Statistics;

/// <summary>
/// The vectors the tests read are the design repo's: byte for byte where <c>../shared/testvectors</c>
/// sits beside the checkout (as it does for developers and CI), and complete in any case.
/// </summary>
public sealed class TestVectorCopyTests
{
    public static TheoryData<string> Files => new(Vectors.Files);

    [Theory]
    [MemberData(nameof(Files))]
    public void The_copies_equal_the_shared_vectors_where_they_are_present(string file)
    {
        var repository = File.ReadAllBytes(Vectors.RepositoryCopy(file));
        // What the tests read is what is checked in (the build copies it next to the assembly).
        Assert.Equal(repository, File.ReadAllBytes(Vectors.OutputCopy(file)));
        var shared = Path.Combine(Vectors.SharedFolder(), file);
        if (Directory.Exists(Vectors.SharedFolder()))
        {
            Assert.True(File.Exists(shared), $"{file} is missing from the shared test vectors");
            Assert.True(
                File.ReadAllBytes(shared).AsSpan().SequenceEqual(repository),
                $"tests/Lepton.Shared.Tests/TestVectors/{file} differs from shared/testvectors/{file}: copy the shared file over it");
        }
        // Present or not, the copy must parse and hold data (the section checks below go further).
        Assert.NotEmpty(JsonNode.Parse(repository)!.AsObject());
    }

    [Fact]
    public void The_statistics_copy_holds_every_section_with_cases()
    {
        foreach (var section in Vectors.StatisticsSections)
        {
            var node = Vectors.Statistics[section];
            Assert.True(node is JsonArray { Count: > 0 }, $"statistics.json has no cases in {section}");
        }
        Assert.Equal(Vectors.StatisticsSections.Order(StringComparer.Ordinal), Vectors.Statistics.Select(p => p.Key).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void The_decisions_copy_holds_every_scenario_with_inputs_and_outputs()
    {
        var cases = Vectors.Decisions["cases"]!.AsArray();
        Assert.Equal(10, cases.Count);
        foreach (var c in cases.Select(c => c!.AsObject()))
        {
            foreach (var key in new[] { "name", "weight_bp", "final_step", "candidate", "production", "thresholds", "verdict", "reason", "checks" })
            {
                Assert.True(c.ContainsKey(key), $"case {c["name"]} has no {key}");
            }
        }
    }
}
