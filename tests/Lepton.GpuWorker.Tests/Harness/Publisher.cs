using Lepton.Shared.Lifecycle;
using Lepton.Shared.Models;
using Lepton.Shared.Registry;
using Lepton.Shared.Storage;

namespace Lepton.GpuWorker.Tests.Harness;

/// <summary>Publishes versions and changes routes exactly as the control plane does: model store, then registry.</summary>
public sealed class Publisher(StorageClients clients, string cacheDir)
{
    private static readonly Dictionary<Stage, Stage[]> Paths = new()
    {
        [Stage.Registered] = [],
        [Stage.Validating] = [Stage.Validating],
        [Stage.Evaluating] = [Stage.Validating, Stage.Evaluating],
        [Stage.Production] = [Stage.Validating, Stage.Evaluating, Stage.Production],
        [Stage.Canary] = [Stage.Validating, Stage.Evaluating, Stage.Canary],
        [Stage.Shadow] = [Stage.Validating, Stage.Evaluating, Stage.Shadow],
        [Stage.Rejected] = [Stage.Validating, Stage.Rejected],
        [Stage.RolledBack] = [Stage.Validating, Stage.Evaluating, Stage.Canary, Stage.RolledBack],
    };

    public ModelRegistry Registry { get; } = new(clients, TimeProvider.System);

    public ModelStore Store { get; } = new(clients, new Lepton.Shared.Configuration.ModelStoreOptions { CacheDir = cacheDir });

    public async Task PublishAsync(string model, string version, byte[] onnx, Stage stage = Stage.Production, Batching? batching = null, string reason = "test")
    {
        var manifest = batching is null ? null : new Manifest { Batching = batching };
        using var stream = new MemoryStream(onnx);
        var stored = await Store.UploadModelAsync(model, version, stream, manifest);
        await Registry.RegisterVersionAsync(model, version, stored.Sha256, stored.Size, stored.BlobPath, actor: "test");
        foreach (var step in Paths[stage])
        {
            await Registry.TransitionAsync(model, version, step, reason, "test");
        }
    }

    public Task MoveAsync(string model, string version, Stage to, string reason = "test") =>
        Registry.TransitionAsync(model, version, to, reason, "test");

    public async Task<Routes> RouteAsync(string model, Func<Routes, Routes> change)
    {
        var current = await Registry.GetRoutesAsync(model);
        return await Registry.SetRoutesAsync(change(current), "test", "test");
    }
}
