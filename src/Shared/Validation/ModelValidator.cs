using Lepton.Shared.Registry;
using Microsoft.ML.OnnxRuntime;

namespace Lepton.Shared.Validation;

/// <summary>What validation concluded: the model's signature, or why it was refused.</summary>
public sealed record ValidationOutcome(Signature? Signature, string? Rejection)
{
    public bool Passed => Rejection is null;

    public static ValidationOutcome Pass(Signature signature) => new(signature, null);

    public static ValidationOutcome Reject(string reason) => new(null, reason);
}

/// <summary>
/// Validation of an uploaded ONNX model before it may be evaluated (DESIGN.md §3 <i>validate</i>),
/// in the order that costs least first: size; the protobuf (parses, opsets, operator domains,
/// external data, declared sizes within the element budget), all before ONNX Runtime sees the
/// bytes; then ONNX Runtime loads it (CPU); its signature is compatible with production unless
/// it is a major version the manifest declares breaking; a smoke inference on generated input
/// returns finite values of the declared shapes.
/// </summary>
/// <remarks>
/// A refused model is an outcome, not an error: <see cref="Validate"/> returns it with the reason
/// (which says what to do next and never holds a local path), so the lifecycle reports it at once
/// instead of retrying.
/// </remarks>
public static class ModelValidator
{
    public static ValidationOutcome Validate(byte[] model, Signature? production, Bump bump, bool breaking, ValidationLimits limits)
    {
        try
        {
            return ValidationOutcome.Pass(Check(model, production, bump, breaking, limits));
        }
        catch (InvalidModelException rejected)
        {
            return ValidationOutcome.Reject(rejected.Message);
        }
    }

    private static Signature Check(byte[] model, Signature? production, Bump bump, bool breaking, ValidationLimits limits)
    {
        if (model.LongLength > limits.MaxBytes)
        {
            throw new InvalidModelException($"the model file is {model.LongLength} bytes, over the limit of {limits.MaxBytes}");
        }
        var proto = OnnxInspection.Parse(model);
        OnnxInspection.Check(proto, limits);
        InferenceSession session;
        try
        {
            session = OrtModels.CpuSession(model);
        }
        catch (OnnxRuntimeException error)
        {
            throw new InvalidModelException($"ONNX Runtime cannot load the model: {SmokeTest.FirstLine(error.Message)}");
        }
        using (session)
        {
            var signature = OrtModels.SignatureOf(session, OnnxInspection.DeclaredShapes(proto));
            if (production is not null)
            {
                var problems = SignatureCompatibility.Problems(signature, production);
                if (problems.Count > 0 && !(breaking && bump == Bump.Major))
                {
                    var hint = bump == Bump.Major
                        ? "declare \"breaking\": true in lepton.json"
                        : "publish it as a new major version with \"breaking\": true in lepton.json";
                    throw new InvalidModelException(
                        $"the signature is incompatible with the production version: {string.Join("; ", problems)}. Keep the signature, or {hint}");
                }
            }
            SmokeTest.Run(session, signature);
            return signature;
        }
    }
}
