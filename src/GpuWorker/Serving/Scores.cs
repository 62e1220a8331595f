using Lepton.GpuWorker.Tensors;
using Lepton.Shared.Metrics;

namespace Lepton.GpuWorker.Serving;

/// <summary>
/// Per-row summaries of a model's outputs for canary analysis: the score (top-1 probability of the
/// output named like <c>probabilities</c>, else the first 2-D float output; other models give their
/// first value clipped to [0, 1]) and the top-1 class (argmax of that 2-D output, else the first
/// value) that shadow comparisons flip on.
/// </summary>
public static class Scores
{
    /// <summary>The index of the output scores come from, chosen once per loaded version.</summary>
    public static int PickScoreOutput(IReadOnlyList<TensorSpec> outputs)
    {
        for (var i = 0; i < outputs.Count; i++)
        {
            if (outputs[i].Name.Contains("prob", StringComparison.OrdinalIgnoreCase))
            {
                return i;
            }
        }
        for (var i = 0; i < outputs.Count; i++)
        {
            if (outputs[i].Shape.Count == 2 && DataTypes.IsFloat(outputs[i].Type))
            {
                return i;
            }
        }
        return 0;
    }

    /// <summary>Element <paramref name="index"/> as a double (BYTES count as 0).</summary>
    public static double ValueAt(TensorData tensor, int index) => tensor.Type switch
    {
        DataType.Fp32 => tensor.As<float>()[index],
        DataType.Fp64 => tensor.As<double>()[index],
        DataType.Fp16 => (double)tensor.As<Half>()[index],
        DataType.Int8 => tensor.As<sbyte>()[index],
        DataType.Int16 => tensor.As<short>()[index],
        DataType.Int32 => tensor.As<int>()[index],
        DataType.Int64 => tensor.As<long>()[index],
        DataType.UInt8 or DataType.Bool => tensor.Span[index],
        DataType.UInt16 => tensor.As<ushort>()[index],
        DataType.UInt32 => tensor.As<uint>()[index],
        DataType.UInt64 => tensor.As<ulong>()[index],
        _ => 0,
    };

    private static (int Rows, int Columns) Layout(TensorData output)
    {
        var rows = output.Shape.Length == 0 ? 1 : (int)output.Shape[0];
        var columns = rows == 0 ? 0 : output.Count / rows;
        return (rows, columns);
    }

    /// <summary>Adds each row's score to <paramref name="bins"/> (<see cref="WindowRollup.ScoreBins"/> bins; non-finite scores are skipped).</summary>
    public static void AddToBins(TensorData output, long[] bins)
    {
        var (rows, columns) = Layout(output);
        if (output.Type == DataType.Bytes)
        {
            bins[0] += rows;
            return;
        }
        var twoDimFloat = output.Shape.Length == 2 && columns > 0 && DataTypes.IsFloat(output.Type);
        for (var r = 0; r < rows; r++)
        {
            double score;
            if (twoDimFloat)
            {
                score = double.NegativeInfinity;
                for (var c = 0; c < columns; c++)
                {
                    score = Math.Max(score, ValueAt(output, (r * columns) + c));
                }
            }
            else
            {
                score = columns == 0 ? 0 : Math.Clamp(ValueAt(output, r * columns), 0.0, 1.0);
            }
            if (double.IsFinite(score))
            {
                bins[Math.Min((int)(Math.Clamp(score, 0.0, 1.0) * WindowRollup.ScoreBins), WindowRollup.ScoreBins - 1)]++;
            }
        }
    }

    /// <summary>The predicted class per row: the argmax of a 2-D output, else the first value.</summary>
    public static double[] Top1(TensorData output)
    {
        var (rows, columns) = Layout(output);
        var top = new double[rows];
        for (var r = 0; r < rows; r++)
        {
            if (columns == 0 || output.Type == DataType.Bytes)
            {
                continue;
            }
            if (output.Shape.Length == 2)
            {
                var best = 0;
                for (var c = 1; c < columns; c++)
                {
                    if (ValueAt(output, (r * columns) + c) > ValueAt(output, (r * columns) + best))
                    {
                        best = c;
                    }
                }
                top[r] = best;
            }
            else
            {
                top[r] = ValueAt(output, r * columns);
            }
        }
        return top;
    }

    /// <summary>Whether any element of a float tensor is NaN or infinite.</summary>
    public static bool HasNonFinite(TensorData tensor) => tensor.Type switch
    {
        DataType.Fp32 => !AllFinite(tensor.As<float>()),
        DataType.Fp64 => !AllFinite(tensor.As<double>()),
        DataType.Fp16 => !AllFinite(tensor.As<Half>()),
        _ => false,
    };

    private static bool AllFinite<T>(ReadOnlySpan<T> values)
        where T : System.Numerics.IFloatingPointIeee754<T>
    {
        foreach (var value in values)
        {
            if (!T.IsFinite(value))
            {
                return false;
            }
        }
        return true;
    }
}
