using Lepton.Shared.Metrics;
using Lepton.Shared.Statistics;

namespace Lepton.Shared.Tests.Statistics;

/// <summary>Every case and every number of <c>statistics.json</c>, the reference's outputs.</summary>
public sealed class StatisticsVectorTests
{
    public static TheoryData<int> ErrorRateCases => Vectors.Indices("error_rate_evidence");

    public static TheoryData<int> MannWhitneyCases => Vectors.Indices("mann_whitney_from_buckets");

    public static TheoryData<int> SampleRatioCases => Vectors.Indices("sample_ratio_mismatch");

    public static TheoryData<int> FlipRateCases => Vectors.Indices("flip_rate_test");

    public static TheoryData<int> PsiCases => Vectors.Indices("population_stability_index");

    public static TheoryData<int> WilcoxonCases => Vectors.Indices("wilcoxon_paired_latency");

    public static TheoryData<int> McNemarCases => Vectors.Indices("mcnemar");

    [Fact]
    public void The_histogram_bounds_are_the_references() =>
        Assert.Equal(Vectors.Doubles(Vectors.Statistics["latency_bucket_bounds_ms"]), LatencyHistogram.BoundsMs);

    [Theory]
    [MemberData(nameof(ErrorRateCases))]
    public void Error_rate_e_process_matches(int index)
    {
        var v = Vectors.Case("error_rate_evidence", index);
        var (xc, nc, xp, np) = (Long(v, "cand_errors"), Long(v, "cand_n"), Long(v, "prod_errors"), Long(v, "prod_n"));
        var (ratio, delta) = (Vectors.Number(v["max_ratio"]), Vectors.Number(v["max_delta"]));
        var result = ErrorRateEvidence.Test(xc, nc, xp, np, alpha: 0.05, maxRatio: ratio, maxDelta: delta);
        Vectors.AssertClose(v["log_e"], result.LogEValue, "log_e");
        Vectors.AssertClose(v["p_value"], result.PValue, "p_value");
        Assert.Equal(ErrorRateEProcess.LogEValue(xc, nc, xp, np, ratio, delta), result.LogEValue);
    }

    [Theory]
    [MemberData(nameof(MannWhitneyCases))]
    public void Mann_whitney_and_p95_from_buckets_match(int index)
    {
        var v = Vectors.Case("mann_whitney_from_buckets", index);
        var candidate = Vectors.Longs(v["candidate"]);
        var production = Vectors.Longs(v["production"]);
        var result = LatencyStatistics.MannWhitneyFromBuckets(candidate, production);
        Vectors.AssertClose(v["u"], result.U, "u");
        Vectors.AssertClose(v["p_value"], result.PValue, "p_value");
        Vectors.AssertClose(v["p95_candidate_ms"], LatencyStatistics.P95FromBuckets(candidate), "p95_candidate_ms");
        Vectors.AssertClose(v["p95_production_ms"], LatencyStatistics.P95FromBuckets(production), "p95_production_ms");
    }

    [Theory]
    [MemberData(nameof(SampleRatioCases))]
    public void Sample_ratio_mismatch_matches(int index)
    {
        var v = Vectors.Case("sample_ratio_mismatch", index);
        var result = SampleRatioMismatch.Test(Long(v, "candidate_routed"), Long(v, "production_routed"), (int)Long(v, "weight_bp"));
        Vectors.AssertClose(v["chi2"], result.Chi2, "chi2");
        Vectors.AssertClose(v["p_value"], result.PValue, "p_value");
    }

    [Theory]
    [MemberData(nameof(FlipRateCases))]
    public void Exact_binomial_flip_rate_test_matches(int index)
    {
        var v = Vectors.Case("flip_rate_test", index);
        var result = PairedStatistics.FlipRateTest(Long(v, "pairs"), Long(v, "flips"), Vectors.Number(v["max_flip_rate"]));
        Vectors.AssertClose(v["p_value"], result.PValue, "p_value");
    }

    [Theory]
    [MemberData(nameof(PsiCases))]
    public void Population_stability_index_matches(int index)
    {
        var v = Vectors.Case("population_stability_index", index);
        Vectors.AssertClose(v["psi"], PairedStatistics.PopulationStabilityIndex(Vectors.Longs(v["expected"]), Vectors.Longs(v["actual"])), "psi");
    }

    [Theory]
    [MemberData(nameof(WilcoxonCases))]
    public void Paired_wilcoxon_matches(int index)
    {
        var v = Vectors.Case("wilcoxon_paired_latency", index);
        var result = PairedStatistics.WilcoxonPairedLatency(Vectors.Doubles(v["diffs_ms"]));
        Vectors.AssertClose(v["statistic"], result.Statistic, "statistic");
        Vectors.AssertClose(v["p_value"], result.PValue, "p_value");
    }

    [Theory]
    [MemberData(nameof(McNemarCases))]
    public void Exact_mcnemar_matches(int index)
    {
        var v = Vectors.Case("mcnemar", index);
        Vectors.AssertClose(v["p_value"], PairedStatistics.McNemar(Long(v, "b01"), Long(v, "b10")), "p_value");
    }

    [Fact]
    public void The_vectors_cover_both_wilcoxon_methods_and_the_srm_edge_cases()
    {
        // Guards the data-driven tests above against a vector file that lost its hard cases.
        var wilcoxon = Vectors.Section("wilcoxon_paired_latency").Select(c => Vectors.Doubles(c!["diffs_ms"])).ToList();
        Assert.Contains(wilcoxon, d => d.Length <= PairedStatistics.WilcoxonExactMaxN && d.Select(Math.Abs).Distinct().Count() == d.Length);
        Assert.Contains(wilcoxon, d => d.Length > PairedStatistics.WilcoxonExactMaxN && d.Select(Math.Abs).Distinct().Count() < d.Length);
        var srm = Vectors.Section("sample_ratio_mismatch");
        Assert.Contains(srm, c => Vectors.Number(c!["chi2"]) == double.PositiveInfinity);
        Assert.Contains(srm, c => Long(c!.AsObject(), "weight_bp") == 10_000);
        Assert.Contains(Vectors.Section("error_rate_evidence"), c => Vectors.Number(c!["p_value"]) < 1e-9);
    }

    private static long Long(System.Text.Json.Nodes.JsonObject v, string key) => v[key]!.GetValue<long>();
}
