using Lepton.Shared;
using Lepton.Shared.Lifecycle;
using Lepton.Shared.Models;
using Lepton.Shared.Policies;
using Lepton.Shared.Registry;
using Lepton.Shared.Rollout;
using Lepton.Shared.Validation;

namespace Lepton.Functions.Lifecycle.Activities;

/// <summary>Registers the uploaded file (idempotent per content) and links the orchestration to the version.</summary>
public sealed class RegisterActivity(ModelStore store, ModelRegistry registry) : LeptonActivity<RegisterInput, RegisterResult>
{
    public override async Task<RegisterResult> ExecuteAsync(RegisterInput input, CancellationToken cancellationToken)
    {
        try
        {
            var stored = await store.FetchModelAsync(input.Model, input.Version, cancellationToken);
            if (input.Sha256.Length > 0 && input.Sha256 != stored.Sha256)
            {
                return new RegisterResult(null,
                    $"{input.Model} {input.Version}: the lifecycle was started for sha256 {input.Sha256[..Math.Min(12, input.Sha256.Length)]}… "
                    + $"but the stored file has {stored.Sha256[..12]}…; start it again for the current file");
            }
            var record = await registry.RegisterVersionAsync(
                input.Model, input.Version, stored.Sha256, stored.Size, stored.BlobPath, input.Actor, cancellationToken: cancellationToken);
            if (record.InstanceId != input.InstanceId)
            {
                record = await registry.AnnotateAsync(input.Model, input.Version, instanceId: input.InstanceId, cancellationToken: cancellationToken);
            }
            // A run (a first one, or one the reconciler resumed) starts with no operator command
            // accepted: a claim left by a run that died before acting on it must not block the next.
            await registry.ClearCommandAsync(input.Model, input.Version, cancellationToken);
            return new RegisterResult(record.Stage, null);
        }
        catch (LeptonException error) when (IsRefusal(error))
        {
            return new RegisterResult(null, error.Message);
        }
    }
}

/// <summary>Validates the model file (ONNX checks, compatibility with production, smoke test) and resolves its policy and rollout plan.</summary>
public sealed class ValidateActivity(ModelStore store, ModelRegistry registry, RolloutOperations rollout) : LeptonActivity<ValidateInput, ValidateResult>
{
    public override async Task<ValidateResult> ExecuteAsync(ValidateInput input, CancellationToken cancellationToken)
    {
        try
        {
            var record = await registry.GetVersionAsync(input.Model, input.Version, cancellationToken);
            var manifest = await store.GetManifestAsync(input.Model, input.Version, cancellationToken) ?? new Manifest();
            var policy = PolicyResolver.Resolve(manifest.Policy, input.Overrides);
            var productionVersion = await rollout.ProductionVersionAsync(input.Model, besides: input.Version, cancellationToken);
            if (RolloutOperations.Downgrade(input.Version, productionVersion) is { } downgrade)
            {
                return ValidateResult.Rejected(downgrade);
            }
            var production = productionVersion is null ? null : await registry.GetVersionAsync(input.Model, productionVersion, cancellationToken);
            var bump = record.SemVer.BumpFrom(production?.SemVer);
            var path = await store.GetVerifiedModelPathAsync(input.Model, input.Version, record.Sha256, cancellationToken);
            var bytes = await File.ReadAllBytesAsync(path, cancellationToken);
            var outcome = ModelValidator.Validate(bytes, production?.Signature, bump, manifest.Breaking, new ValidationLimits { MaxBytes = store.MaxModelBytes });
            Failpoints.Hit(Failpoints.DuringValidation);
            if (!outcome.Passed)
            {
                return ValidateResult.Rejected(outcome.Rejection!);
            }
            await registry.AnnotateAsync(input.Model, input.Version, signature: outcome.Signature, cancellationToken: cancellationToken);
            return new ValidateResult
            {
                Signature = outcome.Signature,
                Policy = policy,
                Plan = RolloutPlan.For(policy, bump),
                Production = productionVersion,
                Task = manifest.Task,
                Dataset = manifest.Dataset,
            };
        }
        catch (LeptonException error) when (IsRefusal(error))
        {
            return ValidateResult.Rejected(error.Message);
        }
    }
}

/// <summary>One stage change of this version, audited and traced; idempotent for the stage it expects to leave.</summary>
public sealed class TransitionActivity(RolloutOperations rollout) : LeptonActivity<TransitionInput, TransitionResult>
{
    public override async Task<TransitionResult> ExecuteAsync(TransitionInput input, CancellationToken cancellationToken)
    {
        var record = await rollout.TransitionAsync(
            input.Model, input.Version, input.To, input.ExpectedFrom, input.Reason, input.Actor, input.Details, cancellationToken);
        return new TransitionResult(record.Stage);
    }
}
