using System.IO.Hashing;
using System.Text;
using CsCheck;
using Lepton.GpuWorker.Routing;
using Lepton.Shared.Registry;

namespace Lepton.GpuWorker.Tests.Unit;

/// <summary>Routing: stable sticky buckets, weights in basis points, only ready versions, shadow sampling.</summary>
public sealed class RouterTests
{
    [Fact]
    public void The_sticky_bucket_is_the_documented_stable_hash()
    {
        // The contract every replica (and any other implementation) shares: XxHash3-64 of
        // "model NUL key" as UTF-8, modulo 10000. A change would move every sticky caller.
        foreach (var (model, key) in new[] { ("digits", "user-42"), ("fraud-v2", "ü-ñ"), ("m", "") })
        {
            var bytes = Encoding.UTF8.GetBytes($"{model}\0{key}");
            Assert.Equal((int)(XxHash3.HashToUInt64(bytes) % 10_000), StickyBucket.Of(model, key));
        }
        Assert.Equal(StickyBucket.Of("digits", "user-42"), StickyBucket.Of("digits", "user-42"));
        var buckets = Enumerable.Range(0, 2000).Select(i => StickyBucket.Of("digits", $"user-{i}")).ToHashSet();
        Assert.True(buckets.Min() >= 0 && buckets.Max() < 10_000);
        Assert.True(buckets.Count > 1500, "buckets are spread, not clumped");
        var longKey = new string('k', 5000);
        Assert.Equal((int)(XxHash3.HashToUInt64(Encoding.UTF8.GetBytes($"m\0{longKey}")) % 10_000), StickyBucket.Of("m", longKey));
    }

    [Fact]
    public void A_caller_moved_to_the_candidate_stays_there_as_the_weight_grows()
    {
        Gen.Select(Gen.String[1, 40], Gen.Int[0, 10_000].List[2, 6]).Sample((key, weights) =>
        {
            var seenCandidate = false;
            foreach (var weight in weights.Order())
            {
                var table = new RouteTable("m", "1.0.0", "1.1.0", weight);
                var chosen = table.Pick(StickyBucket.Of("m", key));
                if (seenCandidate)
                {
                    Assert.Equal("1.1.0", chosen);
                }
                seenCandidate |= chosen == "1.1.0";
            }
        }, iter: 500);
    }

    [Fact]
    public void The_keyed_split_matches_the_weight_over_many_callers()
    {
        var table = new RouteTable("m", "1.0.0", "1.1.0", 1_000);
        const int n = 20_000;
        var hits = Enumerable.Range(0, n).Count(i => table.Pick(StickyBucket.Of("m", $"caller-{i}")) == "1.1.0");
        // 10% of 20,000: sd 42; ±5 sd.
        Assert.InRange(hits, 2000 - 212, 2000 + 212);
    }

    [Fact]
    public void Zero_and_full_weight()
    {
        Assert.Equal("1.0.0", new RouteTable("m", "1.0.0", "1.1.0", 0).Pick(0));
        Assert.Equal("1.1.0", new RouteTable("m", "1.0.0", "1.1.0", 10_000).Pick(9_999));
        Assert.Null(new RouteTable("m", null).Pick(0));
    }

    [Fact]
    public void A_new_production_serves_only_once_ready_and_the_old_one_bridges()
    {
        var previous = new RouteTable("m", "1.0.0");
        var stored = new Routes { Model = "m", Production = "2.0.0", Generation = 3 };
        var table = RouteTable.Effective(stored, v => v == "1.0.0", previous);
        Assert.Equal("1.0.0", table.Production);
        Assert.Equal(3, table.Generation);
        Assert.Equal("2.0.0", RouteTable.Effective(stored, _ => true, table).Production);
    }

    [Fact]
    public void A_candidate_gets_no_share_until_ready_and_everything_without_production()
    {
        var stored = new Routes { Model = "m", Production = "1.0.0", Candidate = "1.1.0", CandidateWeightBp = 500 };
        Assert.Equal(0, RouteTable.Effective(stored, v => v == "1.0.0", null).CandidateWeightBp);
        var ready = RouteTable.Effective(stored, _ => true, null);
        Assert.Equal(("1.1.0", 500), (ready.Candidate, ready.CandidateWeightBp));
        var alone = RouteTable.Effective(stored, v => v == "1.1.0", null);
        Assert.Null(alone.Production);
        Assert.Equal(10_000, alone.CandidateWeightBp);
        Assert.Equal("1.1.0", alone.Pick(9_999));
    }

    [Fact]
    public void Shadow_sampling_never_mirrors_a_version_to_itself()
    {
        var stored = new Routes { Model = "m", Production = "1.0.0", Shadow = "1.1.0", ShadowFractionBp = 3_000 };
        var table = RouteTable.Effective(stored, _ => true, null);
        Assert.Equal("1.1.0", table.Mirrors(2_999, "1.0.0"));
        Assert.Null(table.Mirrors(3_000, "1.0.0"));
        Assert.Null(table.Mirrors(0, "1.1.0"));
        Assert.Null(RouteTable.Effective(stored, v => v == "1.0.0", null).Mirrors(0, "1.0.0"));
    }
}
