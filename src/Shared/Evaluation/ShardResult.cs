using Lepton.Shared.Models;

namespace Lepton.Shared.Evaluation;

/// <summary>
/// Sufficient statistics of one model on one shard of a dataset: a confusion matrix and the binary
/// scores (classification), sums of errors (regression), per-batch latencies. Shards evaluated in
/// parallel merge (<see cref="Merge"/>) into exactly the numbers one pass over the whole dataset gives.
/// </summary>
public sealed record ShardResult
{
    public required ModelTask Task { get; init; }

    public required long Rows { get; init; }

    /// <summary><c>[true][predicted]</c> counts (classification).</summary>
    public long[][] Confusion { get; init; } = [];

    /// <summary>P(class 1) per row (binary classification only), for ROC-AUC.</summary>
    public double[] BinaryScores { get; init; } = [];

    public int[] BinaryLabels { get; init; } = [];

    public double SumSquaredError { get; init; }

    public double SumAbsoluteError { get; init; }

    /// <summary>Rows with a non-finite output (NaN or infinite).</summary>
    public long Nonfinite { get; init; }

    public double[] BatchLatencyMs { get; init; } = [];

    public int[] BatchRows { get; init; } = [];

    /// <summary>The sum of shard results; confusion matrices of different widths are padded.</summary>
    public static ShardResult Merge(IReadOnlyList<ShardResult> shards)
    {
        if (shards.Count == 0)
        {
            throw new InvalidDatasetException("no shard results to merge: the dataset has no rows");
        }
        var width = shards.Max(s => s.Confusion.Length);
        var confusion = new long[width][];
        for (var i = 0; i < width; i++)
        {
            confusion[i] = new long[width];
        }
        foreach (var shard in shards)
        {
            for (var t = 0; t < shard.Confusion.Length; t++)
            {
                for (var p = 0; p < shard.Confusion[t].Length; p++)
                {
                    confusion[t][p] += shard.Confusion[t][p];
                }
            }
        }
        return new ShardResult
        {
            Task = shards[0].Task,
            Rows = shards.Sum(s => s.Rows),
            Confusion = confusion,
            BinaryScores = shards.SelectMany(s => s.BinaryScores).ToArray(),
            BinaryLabels = shards.SelectMany(s => s.BinaryLabels).ToArray(),
            SumSquaredError = shards.Sum(s => s.SumSquaredError),
            SumAbsoluteError = shards.Sum(s => s.SumAbsoluteError),
            Nonfinite = shards.Sum(s => s.Nonfinite),
            BatchLatencyMs = shards.SelectMany(s => s.BatchLatencyMs).ToArray(),
            BatchRows = shards.SelectMany(s => s.BatchRows).ToArray(),
        };
    }
}

/// <summary>Row ranges of dataset shards.</summary>
public static class Shards
{
    /// <summary>Rows <c>[Start, End)</c> of shard <paramref name="shard"/> of <paramref name="shards"/> (sizes differ by at most one).</summary>
    public static (long Start, long End) Bounds(long rows, int shard, int shards)
    {
        if (shards < 1 || shard < 0 || shard >= shards)
        {
            throw new InvalidDatasetException($"shard {shard} is outside 0..{shards - 1}");
        }
        return (rows * shard / shards, rows * (shard + 1) / shards);
    }
}
