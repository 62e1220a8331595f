using System.Diagnostics;
using Lepton.Shared.Models;
using Lepton.Shared.Validation;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Lepton.Shared.Evaluation;

/// <summary>Runs a model on one shard of its dataset in ONNX Runtime (CPU) and collects a <see cref="ShardResult"/>.</summary>
public static class ShardEvaluator
{
    /// <summary>Rows per inference call: the unit a worker's batcher runs too, so latencies compare.</summary>
    public const int BatchRows = 32;

    public static ShardResult Evaluate(byte[] model, Dataset dataset, ModelTask task, int shard, int shards)
    {
        var (start, end) = Shards.Bounds(dataset.X.Rows, shard, shards);
        using var session = OrtModels.CpuSession(model);
        if (session.InputMetadata.Count != 1)
        {
            throw new InvalidModelException(
                $"evaluation feeds one input array (the dataset's X) but the model has {session.InputMetadata.Count} inputs; "
                + "evaluate multi-input models outside Lepton");
        }
        var (inputName, input) = session.InputMetadata.Single();
        var outputNames = session.OutputMetadata.Keys.ToList();
        var outputs = outputNames.Select(_ => new List<double>()).ToList();
        var outputTypes = session.OutputMetadata.Values.Select(m => m.ElementDataType).ToList();
        var outputRanks = new int[outputNames.Count];
        var latencies = new List<double>();
        var batchRows = new List<int>();
        var rowSize = dataset.X.RowSize;
        var featureShape = dataset.X.Shape.Skip(1).ToArray();
        for (var row = start; row < end; row += BatchRows)
        {
            var rows = (int)Math.Min(BatchRows, end - row);
            long[] shape = [rows, .. featureShape];
            var values = new ReadOnlySpan<double>(dataset.X.Values, checked((int)(row * rowSize)), checked((int)(rows * rowSize)));
            using var feed = Feed(input.ElementDataType, values, shape);
            var clock = Stopwatch.StartNew();
            IDisposableReadOnlyCollection<OrtValue> results;
            try
            {
                using var options = new RunOptions();
                results = session.Run(options, [inputName], [feed], outputNames);
            }
            catch (OnnxRuntimeException error)
            {
                throw new InvalidDatasetException(
                    $"the model cannot run on the dataset's X (shape [{string.Join(", ", dataset.X.Shape)}]): {SmokeTest.FirstLine(error.Message)}");
            }
            latencies.Add(clock.Elapsed.TotalMilliseconds);
            batchRows.Add(rows);
            using (results)
            {
                for (var i = 0; i < results.Count; i++)
                {
                    outputRanks[i] = results[i].GetTensorTypeAndShape().Shape.Length;
                    outputs[i].AddRange(ReadAll(results[i]));
                }
            }
        }
        var labels = dataset.Y.Values.AsSpan(checked((int)(start * dataset.Y.RowSize)), checked((int)((end - start) * dataset.Y.RowSize))).ToArray();
        var n = end - start;
        var produced = outputNames.Select((name, i) => new Output(name, outputTypes[i], outputRanks[i], outputs[i].ToArray(), n)).ToList();
        return task == ModelTask.Regression
            ? Regression(produced, labels, n, dataset.Y.RowSize, latencies, batchRows)
            : Classification(produced, labels, n, latencies, batchRows);
    }

    private sealed record Output(string Name, TensorElementType Type, int Rank, double[] Values, long Rows)
    {
        public bool IsInteger => Type is TensorElementType.Int64 or TensorElementType.Int32 or TensorElementType.Int16
            or TensorElementType.Int8 or TensorElementType.UInt8 or TensorElementType.UInt16 or TensorElementType.UInt32 or TensorElementType.UInt64;

        public bool IsFloating => Type is TensorElementType.Float or TensorElementType.Double or TensorElementType.Float16 or TensorElementType.BFloat16;

        public int Width => Rows == 0 ? 0 : (int)(Values.Length / Rows);
    }

    private static OrtValue Feed(TensorElementType type, ReadOnlySpan<double> values, long[] shape) => type switch
    {
        TensorElementType.Float => OrtValue.CreateTensorValueFromMemory(Convert(values, v => (float)v), shape),
        TensorElementType.Double => OrtValue.CreateTensorValueFromMemory(values.ToArray(), shape),
        TensorElementType.Int64 => OrtValue.CreateTensorValueFromMemory(Convert(values, v => (long)v), shape),
        TensorElementType.Int32 => OrtValue.CreateTensorValueFromMemory(Convert(values, v => (int)v), shape),
        var other => throw new InvalidModelException(
            $"evaluation feeds the dataset's numeric X, but the model's input is {OrtModels.TypeName(other)}; use a float, double or integer input"),
    };

    private static T[] Convert<T>(ReadOnlySpan<double> values, Func<double, T> convert)
    {
        var result = new T[values.Length];
        for (var i = 0; i < values.Length; i++)
        {
            result[i] = convert(values[i]);
        }
        return result;
    }

    private static double[] ReadAll(OrtValue value)
    {
        if (!value.IsTensor)
        {
            return [];
        }
        return value.GetTensorTypeAndShape().ElementDataType switch
        {
            TensorElementType.Float => Widen(value.GetTensorDataAsSpan<float>(), v => v),
            TensorElementType.Double => value.GetTensorDataAsSpan<double>().ToArray(),
            TensorElementType.Float16 => Widen(value.GetTensorDataAsSpan<Float16>(), v => v.ToFloat()),
            TensorElementType.BFloat16 => Widen(value.GetTensorDataAsSpan<BFloat16>(), v => v.ToFloat()),
            TensorElementType.Int64 => Widen(value.GetTensorDataAsSpan<long>(), v => v),
            TensorElementType.Int32 => Widen(value.GetTensorDataAsSpan<int>(), v => v),
            TensorElementType.Int16 => Widen(value.GetTensorDataAsSpan<short>(), v => v),
            TensorElementType.Int8 => Widen(value.GetTensorDataAsSpan<sbyte>(), v => v),
            TensorElementType.UInt8 => Widen(value.GetTensorDataAsSpan<byte>(), v => v),
            TensorElementType.UInt16 => Widen(value.GetTensorDataAsSpan<ushort>(), v => v),
            TensorElementType.UInt32 => Widen(value.GetTensorDataAsSpan<uint>(), v => v),
            TensorElementType.UInt64 => Widen(value.GetTensorDataAsSpan<ulong>(), v => v),
            TensorElementType.Bool => Widen(value.GetTensorDataAsSpan<bool>(), v => v ? 1 : 0),
            _ => [],
        };
    }

    private static double[] Widen<T>(ReadOnlySpan<T> values, Func<T, double> widen)
    {
        var result = new double[values.Length];
        for (var i = 0; i < values.Length; i++)
        {
            result[i] = widen(values[i]);
        }
        return result;
    }

    private static ShardResult Regression(List<Output> outputs, double[] y, long rows, long yRowSize, List<double> latencies, List<int> batchRows)
    {
        var prediction = outputs.FirstOrDefault(o => o.IsFloating || o.IsInteger)
            ?? throw new InvalidModelException("regression needs a numeric output; the model has none");
        double squared = 0, absolute = 0;
        long nonfinite = 0;
        for (var i = 0; i < rows; i++)
        {
            // The first value of each row's prediction against the first value of its target.
            var predicted = prediction.Values[i * prediction.Width];
            if (!double.IsFinite(predicted))
            {
                nonfinite++;
                continue;
            }
            var error = predicted - y[i * yRowSize];
            squared += error * error;
            absolute += Math.Abs(error);
        }
        return new ShardResult
        {
            Task = ModelTask.Regression,
            Rows = rows,
            SumSquaredError = squared,
            SumAbsoluteError = absolute,
            Nonfinite = nonfinite,
            BatchLatencyMs = latencies.ToArray(),
            BatchRows = batchRows.ToArray(),
        };
    }

    private static ShardResult Classification(List<Output> outputs, double[] y, long rows, List<double> latencies, List<int> batchRows)
    {
        var labels = outputs.FirstOrDefault(o => o.Rank == 1 && o.IsInteger);
        var scores = outputs.FirstOrDefault(o => o.Rank == 2 && o.IsFloating);
        if (labels is null && scores is null)
        {
            throw new InvalidModelException(
                "classification needs an integer label output [N] or a score output [N, classes]; "
                + "set task to 'regression' in lepton.json if this is a regressor");
        }
        var width = scores?.Width ?? 0;
        var predicted = new long[rows];
        long nonfinite = 0;
        for (var i = 0; i < rows; i++)
        {
            if (scores is not null)
            {
                var best = 0;
                var bestScore = double.NegativeInfinity;
                var finite = true;
                for (var c = 0; c < width; c++)
                {
                    var s = scores.Values[(i * width) + c];
                    finite &= double.IsFinite(s);
                    // NaN never wins, as numpy's argmax over nan_to_num(nan=-inf).
                    if (!double.IsNaN(s) && s > bestScore)
                    {
                        (best, bestScore) = (c, s);
                    }
                }
                nonfinite += finite ? 0 : 1;
                predicted[i] = best;
            }
            if (labels is not null)
            {
                predicted[i] = (long)labels.Values[i];
            }
        }
        var truth = new long[rows];
        for (var i = 0; i < rows; i++)
        {
            var label = y[i];
            if (label < 0 || label != Math.Floor(label))
            {
                throw new InvalidDatasetException($"classification labels must be class indices 0, 1, 2…; y holds {label}");
            }
            truth[i] = (long)label;
        }
        var classes = (int)Math.Max(Math.Max(truth.DefaultIfEmpty(0).Max(), predicted.DefaultIfEmpty(0).Max()) + 1, width);
        var confusion = new long[classes][];
        for (var c = 0; c < classes; c++)
        {
            confusion[c] = new long[classes];
        }
        for (var i = 0; i < rows; i++)
        {
            if (predicted[i] < 0)
            {
                throw new InvalidModelException($"the model predicted class {predicted[i]}; class labels must be 0, 1, 2…");
            }
            confusion[truth[i]][predicted[i]]++;
        }
        double[] binaryScores = [];
        int[] binaryLabels = [];
        if (scores is not null && width == 2)
        {
            binaryScores = new double[rows];
            for (var i = 0; i < rows; i++)
            {
                var s = scores.Values[(i * 2) + 1];
                binaryScores[i] = double.IsNaN(s) ? 0 : s;
            }
            binaryLabels = truth.Select(t => (int)t).ToArray();
        }
        return new ShardResult
        {
            Task = ModelTask.Classification,
            Rows = rows,
            Confusion = confusion,
            BinaryScores = binaryScores,
            BinaryLabels = binaryLabels,
            Nonfinite = nonfinite,
            BatchLatencyMs = latencies.ToArray(),
            BatchRows = batchRows.ToArray(),
        };
    }
}
