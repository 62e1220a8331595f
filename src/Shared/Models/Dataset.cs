using NumSharp;

namespace Lepton.Shared.Models;

/// <summary>A dense numeric array: its numpy dtype name, its shape and its values in row-major order.</summary>
public sealed record NumericArray(string Dtype, IReadOnlyList<long> Shape, double[] Values)
{
    public long Rows => Shape.Count == 0 ? 0 : Shape[0];

    /// <summary>Values per row (the product of the trailing dimensions).</summary>
    public long RowSize => Shape.Count <= 1 ? 1 : Shape.Skip(1).Aggregate(1L, (a, b) => a * b);

    public float[] ToSingles() => Array.ConvertAll(Values, v => (float)v);

    public long[] ToInt64s() => Array.ConvertAll(Values, v => (long)v);

    public static NumericArray FromSingles(float[] values, params long[] shape) =>
        new("float32", shape, Array.ConvertAll(values, v => (double)v));

    public static NumericArray FromDoubles(double[] values, params long[] shape) => new("float64", shape, values);

    public static NumericArray FromInt64s(long[] values, params long[] shape) =>
        new("int64", shape, Array.ConvertAll(values, v => (double)v));
}

/// <summary>A model's evaluation dataset: inputs <c>X</c> (rows first) and labels or targets <c>y</c>.</summary>
public sealed record Dataset(NumericArray X, NumericArray Y)
{
    /// <summary>Checks the shapes agree; throws <see cref="InvalidDatasetException"/> naming the problem.</summary>
    public Dataset Validate(string name)
    {
        if (X.Shape.Count < 1 || X.Rows == 0)
        {
            throw new InvalidDatasetException($"dataset '{name}': X must have at least one row");
        }
        if (Y.Rows != X.Rows)
        {
            throw new InvalidDatasetException($"dataset '{name}': X has {X.Rows} rows but y has {Y.Rows}; they must match");
        }
        return this;
    }
}

/// <summary>
/// Reads and writes datasets as numpy <c>.npz</c> archives (arrays <c>X</c> and <c>y</c>) with
/// NumSharp: the format numpy users already have (<c>np.savez_compressed</c>), and read with
/// <c>allow_pickle</c> off, so loading a dataset can never run code.
/// </summary>
public static class NpzDatasets
{
    private const long MaxHeaderBytes = 10_000;

    private static readonly Dictionary<NPTypeCode, string> DtypeNames = new()
    {
        [NPTypeCode.Single] = "float32",
        [NPTypeCode.Double] = "float64",
        [NPTypeCode.Int64] = "int64",
        [NPTypeCode.Int32] = "int32",
        [NPTypeCode.Int16] = "int16",
        [NPTypeCode.Byte] = "uint8",
        [NPTypeCode.UInt16] = "uint16",
        [NPTypeCode.UInt32] = "uint32",
        [NPTypeCode.UInt64] = "uint64",
        [NPTypeCode.Boolean] = "bool",
    };

    /// <summary>Parses an <c>.npz</c> archive; <paramref name="label"/> names it in errors (a blob name, never a local path).</summary>
    public static Dataset Read(Stream npz, string label)
    {
        try
        {
            using var archive = np.load_npz(npz, false, false, MaxHeaderBytes);
            var files = archive.Keys.ToList();
            if (!archive.ContainsKey("X") || !archive.ContainsKey("y"))
            {
                throw new InvalidDatasetException(
                    $"{label} must hold arrays 'X' and 'y', has {string.Join(", ", files.Order(StringComparer.Ordinal))}");
            }
            return new Dataset(ToNumeric(archive["X"], label, "X"), ToNumeric(archive["y"], label, "y"));
        }
        catch (LeptonException)
        {
            throw;
        }
        catch (Exception error) when (error is InvalidDataException or FormatException or NotSupportedException
            or ArgumentException or InvalidOperationException or IOException or OverflowException)
        {
            throw new InvalidDatasetException($"{label} is not a valid .npz file of numeric arrays X and y ({error.GetType().Name}: {FirstLine(error.Message)})");
        }
    }

    /// <summary>Writes the dataset as a compressed <c>.npz</c> archive numpy reads with <c>np.load</c>.</summary>
    public static byte[] Write(Dataset dataset) =>
        np.savez_compressed(new Dictionary<string, NDArray>
        {
            ["X"] = ToNdArray(dataset.X),
            ["y"] = ToNdArray(dataset.Y),
        });

    private static NumericArray ToNumeric(NDArray array, string label, string name)
    {
        if (!DtypeNames.TryGetValue(array.typecode, out var dtype))
        {
            throw new InvalidDatasetException($"{label}: array {name} has dtype {array.typecode}; use a numeric dtype (float32, float64, int64…)");
        }
        var values = array.astype(NPTypeCode.Double, true).ToArray<double>();
        return new NumericArray(dtype, array.shape.ToArray(), values);
    }

    private static NDArray ToNdArray(NumericArray array)
    {
        NDArray flat = array.Dtype switch
        {
            "float32" => np.array(array.ToSingles()),
            "int64" => np.array(array.ToInt64s()),
            "int32" => np.array(Array.ConvertAll(array.Values, v => (int)v)),
            _ => np.array(array.Values),
        };
        return flat.reshape(array.Shape.ToArray());
    }

    private static string FirstLine(string message)
    {
        var line = message.Split('\n')[0];
        // NumSharp may name the file it read; a rejection reason never shows local paths.
        return line.Contains('/', StringComparison.Ordinal) ? "unreadable content" : line;
    }
}
