using Lepton.Cli.LocalStack;
using Lepton.Shared.Storage;
using Xunit;

namespace Lepton.Testing;

/// <summary>
/// One Azurite per test assembly (an xunit assembly fixture), started before the first test and
/// stopped after the last. Tests isolate themselves by model name (<see cref="TestNames"/>), so they
/// can run in parallel against one emulator.
/// </summary>
public sealed class AzuriteFixture : IAsyncLifetime
{
    private Azurite? _azurite;

    public Azurite Azurite => _azurite ?? throw new InvalidOperationException("Azurite has not started");

    /// <summary>Clients with the storage layout created.</summary>
    public StorageClients Clients { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        _azurite = await Azurite.StartAsync();
        Clients = await _azurite.ClientsAsync();
    }

    public async ValueTask DisposeAsync()
    {
        if (_azurite is not null)
        {
            await _azurite.DisposeAsync();
        }
    }
}

/// <summary>Names no other test uses, so tests sharing one Azurite never see each other's data.</summary>
public static class TestNames
{
    /// <summary>A valid, unique model name starting with <paramref name="prefix"/>.</summary>
    public static string Model(string prefix = "m") => $"{prefix}-{Guid.NewGuid().ToString("N")[..10]}";
}
