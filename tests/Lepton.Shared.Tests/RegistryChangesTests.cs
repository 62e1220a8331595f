using Lepton.Shared.Lifecycle;
using Lepton.Shared.Registry;
using Lepton.Testing;

namespace Lepton.Shared.Tests;

/// <summary>The worker's conditional reads: only routes and version rows written since a server timestamp.</summary>
public sealed class RegistryChangesTests(AzuriteFixture azurite)
{
    private const string Sha = "aa11bb22cc33dd44ee55ff6600112233445566778899aabbccddeeff00112233";
    private readonly ModelRegistry _registry = new(azurite.Clients, TimeProvider.System);
    private readonly string _model = TestNames.Model();
    private readonly string _other = TestNames.Model();

    [Fact(Timeout = 60_000)]
    public async Task Only_rows_changed_since_a_timestamp_come_back()
    {
        var ct = TestContext.Current.CancellationToken;
        foreach (var model in new[] { _model, _other })
        {
            await _registry.RegisterVersionAsync(model, "1.0.0", Sha, 1, $"{model}/1.0.0/model.onnx", "test", cancellationToken: ct);
            foreach (var stage in new[] { Stage.Validating, Stage.Evaluating, Stage.Production })
            {
                await _registry.TransitionAsync(model, "1.0.0", stage, "test", "test", cancellationToken: ct);
            }
            await _registry.SetRoutesAsync(new Routes { Model = model, Production = "1.0.0" }, "test", "test", ct);
        }
        var all = await _registry.RoutesChangedSinceAsync(null, [_model, _other], ct);
        Assert.Equal(new[] { _model, _other }.Order(StringComparer.Ordinal), all.Select(r => r.Routes.Model).Order(StringComparer.Ordinal));
        var newest = all.Max(r => r.Changed);
        Assert.Empty(await _registry.RoutesChangedSinceAsync(newest.AddSeconds(1), [_model, _other], ct));
        var versions = await _registry.VersionsChangedSinceAsync([_model], null, ct);
        Assert.Equal(Stage.Production, Assert.Single(versions).Version.Stage);
        var seen = (await _registry.VersionsChangedSinceAsync([_model, _other], null, ct)).Max(v => v.Changed);

        await _registry.SetRoutesAsync((await _registry.GetRoutesAsync(_model, ct)) with { StickyHeader = "x-user" }, "test", "test", ct);
        await _registry.RegisterVersionAsync(_model, "1.1.0", Sha, 1, $"{_model}/1.1.0/model.onnx", "test", cancellationToken: ct);
        var changed = await _registry.RoutesChangedSinceAsync(newest.AddMilliseconds(1), [_model, _other], ct);
        Assert.Equal("x-user", Assert.Single(changed).Routes.StickyHeader);
        var newVersions = await _registry.VersionsChangedSinceAsync([_model, _other], seen.AddMilliseconds(1), ct);
        Assert.Equal("1.1.0", Assert.Single(newVersions).Version.Version);
        Assert.Empty(await _registry.VersionsChangedSinceAsync([], null, ct));
    }
}
