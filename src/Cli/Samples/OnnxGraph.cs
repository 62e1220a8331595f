using Google.Protobuf;
using Onnx;

namespace Lepton.Cli.Samples;

/// <summary>
/// Builds ONNX models from the ONNX protobuf messages (OnnxSharp's generated classes), for the
/// demo, the benchmarks and the tests: real graphs ONNX Runtime loads, written in a few lines.
/// </summary>
public sealed class OnnxGraph
{
    private readonly GraphProto _graph = new() { Name = "lepton" };
    private readonly List<OperatorSetIdProto> _opsets = [new() { Domain = "", Version = 17 }];
    private int _next;

    /// <summary>Element types by their ONNX names.</summary>
    public static class Types
    {
        public const int Float = (int)TensorProto.Types.DataType.Float;
        public const int Double = (int)TensorProto.Types.DataType.Double;
        public const int Int64 = (int)TensorProto.Types.DataType.Int64;
        public const int Int32 = (int)TensorProto.Types.DataType.Int32;
        public const int String = (int)TensorProto.Types.DataType.String;
        public const int Bool = (int)TensorProto.Types.DataType.Bool;
    }

    public long OpsetVersion
    {
        get => _opsets[0].Version;
        set => _opsets[0].Version = value;
    }

    /// <summary>Declares a graph input; a <c>null</c> dimension is symbolic (named <c>N</c> for the first).</summary>
    public string Input(string name, int elementType, params long?[] shape)
    {
        _graph.Input.Add(ValueInfo(name, elementType, shape));
        return name;
    }

    /// <summary>Declares a graph output produced by <paramref name="value"/> (an Identity renames it).</summary>
    public void Output(string name, string value, int elementType, params long?[] shape)
    {
        if (value != name)
        {
            Node("Identity", [value], [name]);
        }
        _graph.Output.Add(ValueInfo(name, elementType, shape));
    }

    /// <summary>A float tensor constant (an initializer).</summary>
    public string Constant(float[] values, params long[] dims)
    {
        var name = Fresh("c");
        var tensor = new TensorProto { Name = name, DataType = Types.Float };
        tensor.Dims.AddRange(dims);
        tensor.FloatData.AddRange(values);
        _graph.Initializer.Add(tensor);
        return name;
    }

    /// <summary>An int64 tensor constant (shapes, axes).</summary>
    public string Constant(long[] values, params long[] dims)
    {
        var name = Fresh("c");
        var tensor = new TensorProto { Name = name, DataType = Types.Int64 };
        tensor.Dims.AddRange(dims);
        tensor.Int64Data.AddRange(values);
        _graph.Initializer.Add(tensor);
        return name;
    }

    /// <summary>Adds a node and returns the name of its first output.</summary>
    public string Node(string op, string[] inputs, string[]? outputs = null, string domain = "", params (string Name, object Value)[] attributes)
    {
        var node = new NodeProto { OpType = op, Name = Fresh(op.ToLowerInvariant()), Domain = domain };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs ?? [Fresh(op.ToLowerInvariant())]);
        foreach (var (name, value) in attributes)
        {
            node.Attribute.Add(value switch
            {
                long i => new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = i },
                int i => new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = i },
                float f => new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = f },
                long[] ints => Ints(name, ints),
                _ => throw new ArgumentException($"unsupported attribute {name}"),
            });
        }
        _graph.Node.Add(node);
        return node.Output[0];
    }

    /// <summary>Declares use of a non-default operator domain (e.g. one ONNX Runtime does not know).</summary>
    public void UseDomain(string domain, long version) => _opsets.Add(new OperatorSetIdProto { Domain = domain, Version = version });

    /// <summary>Moves the data of every initializer to an external file reference (which validation refuses).</summary>
    public void ExternalizeInitializers(string location)
    {
        foreach (var tensor in _graph.Initializer)
        {
            tensor.FloatData.Clear();
            tensor.DataLocation = TensorProto.Types.DataLocation.External;
            tensor.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = location });
        }
    }

    public byte[] ToBytes()
    {
        var model = new ModelProto { IrVersion = 8, ProducerName = "lepton", ProducerVersion = "1", Graph = _graph.Clone() };
        model.OpsetImport.AddRange(_opsets.Select(o => o.Clone()));
        return model.ToByteArray();
    }

    private string Fresh(string prefix) => $"{prefix}_{_next++}";

    private static AttributeProto Ints(string name, long[] values)
    {
        var attribute = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        attribute.Ints.AddRange(values);
        return attribute;
    }

    private static ValueInfoProto ValueInfo(string name, int elementType, long?[] shape)
    {
        var tensorShape = new TensorShapeProto();
        for (var i = 0; i < shape.Length; i++)
        {
            tensorShape.Dim.Add(shape[i] is { } size
                ? new TensorShapeProto.Types.Dimension { DimValue = size }
                : new TensorShapeProto.Types.Dimension { DimParam = i == 0 ? "N" : $"d{i}" });
        }
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = elementType, Shape = tensorShape } },
        };
    }
}
