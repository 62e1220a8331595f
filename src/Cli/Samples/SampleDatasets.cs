using Lepton.Shared.Models;

namespace Lepton.Cli.Samples;

/// <summary>
/// A labelled dataset made on the spot (nothing downloaded) and classifiers for it with one
/// shared signature, <c>input</c> float32 [N, 64] → <c>label</c> int64 [N] and
/// <c>probabilities</c> float32 [N, 10], so they can be canaried against each other. The data
/// looks like 8×8 pixel digits: 64 features in 0..16, ten classes, each a noisy prototype.
/// </summary>
public static class SampleDatasets
{
    public const int Features = 64;

    public const int Classes = 10;

    /// <summary>Largest feature value; the demo's "unseen slice" sends values above it.</summary>
    public const float FeatureMax = 16f;

    /// <summary>(train, test) drawn from the same ten prototypes, deterministic for <paramref name="seed"/>.</summary>
    public static (Dataset Train, Dataset Test) Digits(int seed = 0, int trainRows = 700, int testRows = 300)
    {
        var random = new Random(seed);
        var prototypes = new double[Classes][];
        for (var c = 0; c < Classes; c++)
        {
            prototypes[c] = Enumerable.Range(0, Features).Select(_ => random.NextDouble() * FeatureMax).ToArray();
        }
        return (Draw(random, prototypes, trainRows), Draw(random, prototypes, testRows));
    }

    /// <summary>A nearest-class-mean classifier fitted on <paramref name="train"/>: the accurate one.</summary>
    public static byte[] GoodClassifier(Dataset train) => Centroids(train, Features);

    /// <summary>The same method looking at only the first <paramref name="features"/> features: clearly less accurate, same signature.</summary>
    public static byte[] WeakClassifier(Dataset train, int features = 2) => Centroids(train, features);

    /// <summary>As accurate as <see cref="GoodClassifier"/>, with extra square MatMuls per batch (slow on purpose).</summary>
    public static byte[] SlowClassifier(Dataset train, int extraLayers = 24, int width = 512)
    {
        var (weights, bias) = Fit(train, Features);
        return SampleModels.SlowClassifier(Features, Classes, weights, bias, extraLayers, width);
    }

    /// <summary>Accurate on the dataset, NaN when any feature exceeds <see cref="FeatureMax"/>.</summary>
    public static byte[] NanOnUnseen(Dataset train)
    {
        var (weights, bias) = Fit(train, Features);
        return SampleModels.NanOutsideRange(Features, Classes, weights, bias, FeatureMax);
    }

    /// <summary>Takes 32 features instead of 64: incompatible with the others' signature.</summary>
    public static byte[] NarrowerInput(Dataset train)
    {
        var (weights, bias) = Fit(train, 32);
        return SampleModels.LinearClassifier(32, Classes, weights[..(32 * Classes)], bias);
    }

    private static byte[] Centroids(Dataset train, int features)
    {
        var (weights, bias) = Fit(train, features);
        return SampleModels.LinearClassifier(Features, Classes, weights, bias);
    }

    /// <summary>
    /// Linear weights of the nearest-class-mean rule over the first <paramref name="used"/>
    /// features: argmin |x − μ_c|² = argmax (x·μ_c − |μ_c|²/2). Scaled down so the softmax is not
    /// saturated (the argmax is unchanged).
    /// </summary>
    private static (float[] Weights, float[] Bias) Fit(Dataset train, int used)
    {
        var means = new double[Classes][];
        var counts = new int[Classes];
        for (var c = 0; c < Classes; c++)
        {
            means[c] = new double[Features];
        }
        var rows = (int)train.X.Rows;
        for (var r = 0; r < rows; r++)
        {
            var c = (int)train.Y.Values[r];
            counts[c]++;
            for (var f = 0; f < Features; f++)
            {
                means[c][f] += train.X.Values[(r * Features) + f];
            }
        }
        const double Scale = 0.05;
        var weights = new float[Features * Classes];
        var bias = new float[Classes];
        for (var c = 0; c < Classes; c++)
        {
            double norm = 0;
            for (var f = 0; f < used; f++)
            {
                var mean = means[c][f] / Math.Max(counts[c], 1);
                weights[(f * Classes) + c] = (float)(mean * Scale);
                norm += mean * mean;
            }
            bias[c] = (float)(-norm / 2 * Scale);
        }
        return (weights, bias);
    }

    private static Dataset Draw(Random random, double[][] prototypes, int rows)
    {
        var x = new double[rows * Features];
        var y = new double[rows];
        for (var r = 0; r < rows; r++)
        {
            var c = r % Classes;
            y[r] = c;
            for (var f = 0; f < Features; f++)
            {
                // Box-Muller noise around the prototype, clipped to the pixel range.
                var noise = Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
                x[(r * Features) + f] = Math.Clamp(Math.Round(prototypes[c][f] + (noise * 9)), 0, FeatureMax);
            }
        }
        return new Dataset(new NumericArray("float32", [rows, Features], x), new NumericArray("int64", [rows], y));
    }
}
