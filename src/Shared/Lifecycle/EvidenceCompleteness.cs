using System.Globalization;
using Lepton.Shared.Metrics;
using Lepton.Shared.Workers;

namespace Lepton.Shared.Lifecycle;

/// <summary>
/// Whether a step's evidence is complete: every replica that served the model during the step has
/// applied the step's routes and written rollups under their generation, recently. Pure: the
/// caller reads the heartbeats and the rows. A look with a gap is never a pass
/// (<see cref="WindowJudging"/>): a replica whose rollups are missing or late may hold exactly the
/// failures that would have rolled the candidate back.
/// </summary>
/// <remarks>
/// A replica counts when it serves the model (<see cref="Heartbeat.Serves"/>), is
/// not draining, and is live now or reported during the step (its last heartbeat is at or after
/// the step's clock start: a replica that went silent during the step may still be serving, cut
/// off from storage, its rollups buffered). A replica that was gone before the step began does not
/// count. Gaps: a replica that stopped reporting; one that applies another generation than the
/// step's; one with no rows under the generation; one whose newest row under it was written longer
/// than the heartbeat age ago while it reports as live (a live replica flushes every few seconds).
/// </remarks>
public static class EvidenceCompleteness
{
    /// <param name="model">The model of the step.</param>
    /// <param name="generation">The route generation of the step.</param>
    /// <param name="clockStart">When the step's clock started.</param>
    /// <param name="now">When the look reads the evidence.</param>
    /// <param name="maxAge">The policy's heartbeat age after which a replica no longer counts as live.</param>
    /// <param name="replicas">Every heartbeat in the <c>workers</c> table.</param>
    /// <param name="rows">The rows read for the step (any generation; others are ignored).</param>
    /// <returns>One sentence per gap, replica by replica; empty when the evidence is complete.</returns>
    public static IReadOnlyList<string> Gaps(
        string model,
        long generation,
        DateTimeOffset clockStart,
        DateTimeOffset now,
        TimeSpan maxAge,
        IReadOnlyList<Heartbeat> replicas,
        IReadOnlyList<StoredRollup> rows)
    {
        var gaps = new List<string>();
        var counted = 0;
        foreach (var replica in replicas.OrderBy(r => r.Replica, StringComparer.Ordinal))
        {
            if (replica.Draining || !replica.Serves(model))
            {
                continue;
            }
            var applied = replica.RouteGenerations.GetValueOrDefault(model);
            var age = now - replica.At;
            var live = age <= maxAge;
            if (!live && replica.At < clockStart)
            {
                continue; // gone before the step began
            }
            counted++;
            var name = replica.Replica;
            if (!live)
            {
                gaps.Add($"replica {name} stopped reporting {Seconds(age)}s ago, during the step: its rollups may be missing or late");
                continue;
            }
            if (applied != generation)
            {
                gaps.Add(applied < generation
                    ? $"replica {name} still applies route generation {applied} (the step's is {generation})"
                    : $"replica {name} applies route generation {applied}: the routes changed after the step's ({generation}) were written");
                continue;
            }
            var own = rows.Where(r => r.Rollup.Replica == name && r.Rollup.RouteGeneration == generation).ToList();
            if (own.Count == 0)
            {
                gaps.Add($"replica {name} wrote no rollups under route generation {generation}");
                continue;
            }
            var written = own.Max(r => r.Written);
            if (now - written > maxAge)
            {
                gaps.Add($"replica {name} last wrote rollups {Seconds(now - written)}s ago while it reports as live: its rollups are late");
            }
        }
        if (counted == 0)
        {
            gaps.Add($"no live replica serves {model}");
        }
        return gaps;
    }

    private static string Seconds(TimeSpan span) => span.TotalSeconds.ToString("0.#", CultureInfo.InvariantCulture);
}
