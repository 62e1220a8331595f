using System.Collections.Frozen;
using Google.Protobuf;
using Onnx;

namespace Lepton.Shared.Validation;

/// <summary>
/// Checks on the ONNX protobuf itself, made before anything reaches ONNX Runtime: it parses as a
/// model, its opsets are within the limits, every operator domain is one ONNX Runtime implements
/// (or a function the model defines), no tensor keeps its data in an external file, and the
/// tensors it declares fit the element budget of a smoke inference.
/// </summary>
public static class OnnxInspection
{
    /// <summary>The operator domains ONNX Runtime's CPU build implements.</summary>
    public static readonly FrozenSet<string> KnownDomains =
        new[] { "", "ai.onnx", "ai.onnx.ml", "com.microsoft", "com.microsoft.nchwc", "ai.onnx.preview.training", "ai.onnx.training" }
            .ToFrozenSet(StringComparer.Ordinal);

    /// <summary>Size the smoke input gives a symbolic dimension: the batch (first) and any other.</summary>
    public const long SmokeBatch = 2;

    public const long SmokeSymbolicDim = 2;

    /// <summary>Parses <paramref name="bytes"/> as an ONNX model, or throws <see cref="InvalidModelException"/>.</summary>
    public static ModelProto Parse(byte[] bytes)
    {
        ModelProto model;
        try
        {
            model = ModelProto.Parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException)
        {
            throw NotOnnx();
        }
        // Protobuf is lenient: arbitrary bytes may parse as a message with unknown fields only.
        if (model.Graph is null || model.IrVersion <= 0 || model.OpsetImport.Count == 0)
        {
            throw NotOnnx();
        }
        return model;
    }

    /// <summary>Every check of this class in order; throws <see cref="InvalidModelException"/> at the first problem.</summary>
    public static void Check(ModelProto model, ValidationLimits limits)
    {
        CheckOpset(model, limits);
        CheckDomains(model);
        CheckExternalData(model);
        CheckElementBudget(model, limits);
    }

    /// <summary>The highest default-domain opset the model imports.</summary>
    public static long DefaultOpset(ModelProto model)
    {
        var versions = model.OpsetImport.Where(o => o.Domain is "" or "ai.onnx").Select(o => o.Version).ToList();
        if (versions.Count == 0)
        {
            throw new InvalidModelException("the model declares no default-domain (ai.onnx) opset; re-export it with a standard ONNX exporter");
        }
        return versions.Max();
    }

    /// <summary>
    /// The shapes the graph declares for its inputs and outputs, by name (<c>null</c> = a symbolic
    /// or unknown dimension); values declared without a shape are left out. ONNX Runtime reports
    /// the shapes its own inference arrives at, which may differ from the declaration, and the
    /// smoke test holds a model to what it declares.
    /// </summary>
    public static IReadOnlyDictionary<string, IReadOnlyList<long?>> DeclaredShapes(ModelProto model)
    {
        var shapes = new Dictionary<string, IReadOnlyList<long?>>(StringComparer.Ordinal);
        foreach (var value in model.Graph.Input.Concat(model.Graph.Output))
        {
            if (value.Type?.TensorType?.Shape is { } shape)
            {
                shapes[value.Name] = shape.Dim
                    .Select(d => d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue && d.DimValue > 0 ? (long?)d.DimValue : null)
                    .ToList();
            }
        }
        return shapes;
    }

    private static void CheckOpset(ModelProto model, ValidationLimits limits)
    {
        var opset = DefaultOpset(model);
        if (opset < limits.MinOpset || opset > limits.MaxOpset)
        {
            throw new InvalidModelException(
                $"the model uses opset {opset}; Lepton accepts {limits.MinOpset}..{limits.MaxOpset}: re-export with a supported opset");
        }
    }

    private static void CheckDomains(ModelProto model)
    {
        var local = model.Functions.Select(f => f.Domain).ToHashSet(StringComparer.Ordinal);
        var unknown = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var opset in model.OpsetImport)
        {
            if (!KnownDomains.Contains(opset.Domain) && !local.Contains(opset.Domain))
            {
                unknown.Add(opset.Domain);
            }
        }
        foreach (var node in Nodes(model))
        {
            if (!KnownDomains.Contains(node.Domain) && !local.Contains(node.Domain))
            {
                unknown.Add(node.Domain);
            }
        }
        if (unknown.Count > 0)
        {
            throw new InvalidModelException(
                $"the model uses operators from domain(s) {string.Join(", ", unknown.Select(d => ModelName.Quote(d)))}, "
                + "which ONNX Runtime does not implement (custom operators need a custom-op library Lepton does not load); "
                + "export the model with standard ONNX operators only");
        }
    }

    private static void CheckExternalData(ModelProto model)
    {
        var external = Tensors(model).Count(t => t.DataLocation == TensorProto.Types.DataLocation.External || t.ExternalData.Count > 0);
        if (external > 0)
        {
            // The location is deliberately not named: it is a path on someone's machine.
            throw new InvalidModelException(
                $"the model keeps the data of {external} tensor(s) in external files; Lepton needs one self-contained .onnx file: "
                + "re-export without external data (e.g. onnx.save_model(model, path, save_as_external_data=False))");
        }
    }

    private static void CheckElementBudget(ModelProto model, ValidationLimits limits)
    {
        var initializers = model.Graph.Initializer.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        var tensors = model.Graph.Input.Where(i => !initializers.Contains(i.Name)).Select(i => ("input", i))
            .Concat(model.Graph.Output.Select(o => ("output", o)));
        double total = 0;
        foreach (var (kind, value) in tensors)
        {
            if (value.Type?.TensorType?.Shape is not { } shape)
            {
                continue;
            }
            double elements = 1;
            for (var i = 0; i < shape.Dim.Count; i++)
            {
                var dim = shape.Dim[i];
                var fixedSize = dim.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue && dim.DimValue > 0;
                // Symbolic dimensions only ever get the smoke sizes, so only fixed ones can blow the budget.
                elements *= fixedSize ? dim.DimValue : (i == 0 ? SmokeBatch : SmokeSymbolicDim);
            }
            if (elements > limits.MaxSmokeElements)
            {
                var dims = string.Join("×", shape.Dim.Select(d => d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue ? d.DimValue.ToString(System.Globalization.CultureInfo.InvariantCulture) : "N"));
                throw new InvalidModelException(
                    $"{kind} {ModelName.Quote(value.Name)} declares a fixed shape of {dims} ({elements:0} elements), over Lepton's budget of "
                    + $"{limits.MaxSmokeElements} elements per model; declare the batch dimension symbolic (e.g. 'N') and keep fixed sizes small");
            }
            total += elements;
        }
        if (total > limits.MaxSmokeElements)
        {
            throw new InvalidModelException(
                $"the model's inputs and outputs declare {total:0} elements in all, over Lepton's budget of {limits.MaxSmokeElements}; "
                + "declare batch dimensions symbolic and keep fixed sizes small");
        }
    }

    private static IEnumerable<NodeProto> Nodes(ModelProto model)
    {
        foreach (var node in GraphNodes(model.Graph))
        {
            yield return node;
        }
        foreach (var function in model.Functions)
        {
            foreach (var node in function.Node)
            {
                yield return node;
                foreach (var inner in SubgraphNodes(node))
                {
                    yield return inner;
                }
            }
        }
    }

    private static IEnumerable<NodeProto> GraphNodes(GraphProto graph)
    {
        foreach (var node in graph.Node)
        {
            yield return node;
            foreach (var inner in SubgraphNodes(node))
            {
                yield return inner;
            }
        }
    }

    // If, Loop and Scan carry their bodies as graph attributes.
    private static IEnumerable<NodeProto> SubgraphNodes(NodeProto node) =>
        node.Attribute.SelectMany(a => a.G is null ? a.Graphs : a.Graphs.Prepend(a.G)).SelectMany(GraphNodes);

    private static IEnumerable<TensorProto> Tensors(ModelProto model) => GraphTensors(model.Graph)
        .Concat(model.Functions.SelectMany(f => f.Node).SelectMany(NodeTensors));

    private static IEnumerable<TensorProto> GraphTensors(GraphProto graph) =>
        graph.Initializer
            .Concat(graph.SparseInitializer.SelectMany(s => new[] { s.Values, s.Indices }.OfType<TensorProto>()))
            .Concat(graph.Node.SelectMany(NodeTensors));

    private static IEnumerable<TensorProto> NodeTensors(NodeProto node) =>
        node.Attribute.SelectMany(a =>
            (a.T is null ? a.Tensors : a.Tensors.Prepend(a.T))
                .Concat((a.G is null ? a.Graphs : a.Graphs.Prepend(a.G)).SelectMany(GraphTensors)));

    private static InvalidModelException NotOnnx() => new(
        "the uploaded file is not an ONNX model (it does not parse as an ONNX protobuf); "
        + "export the model with torch.onnx, skl2onnx or tf2onnx and upload the .onnx file");
}
