using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Azure;
using Lepton.Cli.LocalStack;
using Lepton.Shared.Configuration;
using Lepton.Shared.Storage;
using Lepton.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Polly.CircuitBreaker;

namespace Lepton.Shared.Tests.Storage;

/// <summary>
/// The guard over background storage calls, against real endpoints: a port nothing listens on
/// (connection refused), a listener that accepts and never answers (a hung storage), and Azurite.
/// </summary>
public sealed class StorageGuardTests(AzuriteFixture azurite)
{
    private static readonly StorageGuardOptions Fast = new()
    {
        Deadline = TimeSpan.FromSeconds(5),
        FirstBreak = TimeSpan.FromSeconds(0.5),
        LongestBreak = TimeSpan.FromSeconds(0.5),
    };

    private static StorageGuard Guard(StorageGuardOptions? options = null) => new("test", options ?? Fast, TimeProvider.System, NullLogger.Instance);

    /// <summary>Clients of a storage account on a loopback port of our choosing.</summary>
    private static StorageClients ClientsOn(int tablePort, TimeSpan networkTimeout) => new(new StorageOptions
    {
        ConnectionString = Azurite.ConnectionStringFor(Azurite.FreePort(), Azurite.FreePort(), tablePort),
        NetworkTimeout = networkTimeout,
        MaxRetries = 0,
    });

    [Fact(Timeout = 60_000)]
    public async Task Unreachable_storage_opens_the_circuit_and_calls_fail_fast_until_a_probe_succeeds()
    {
        var ct = TestContext.Current.CancellationToken;
        var guard = Guard();
        var refused = ClientsOn(Azurite.FreePort(), TimeSpan.FromSeconds(2)).Table(StorageLayout.RoutesTable);
        var calls = 0;
        Task Refused(CancellationToken token)
        {
            calls++;
            return refused.GetEntityIfExistsAsync<Azure.Data.Tables.TableEntity>("m", "r", cancellationToken: token);
        }
        var first = await Assert.ThrowsAsync<StorageUnavailableException>(() => guard.RunAsync(Refused, ct));
        Assert.Contains("unreachable", first.Message, StringComparison.Ordinal);
        Assert.False(guard.Available);
        Assert.NotNull(guard.UnavailableSince);
        await Assert.ThrowsAsync<StorageUnavailableException>(() => guard.RunAsync(Refused, ct));
        Assert.Equal(CircuitState.Open, guard.Circuit);
        // Open: the next call is refused without touching the network.
        var fast = await Assert.ThrowsAsync<StorageUnavailableException>(() => guard.RunAsync(Refused, ct));
        Assert.Equal(2, calls);
        Assert.Contains("next try", fast.Message, StringComparison.Ordinal);
        // Calls stay refused for the break; then one probe goes out, and storage answering closes the circuit.
        var answering = azurite.Clients.Table(StorageLayout.RoutesTable);
        var refusedFast = 0;
        var watch = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                await guard.RunAsync(token => answering.GetEntityIfExistsAsync<Azure.Data.Tables.TableEntity>("m", "r", cancellationToken: token), ct);
                break;
            }
            catch (StorageUnavailableException) when (watch.Elapsed < TimeSpan.FromSeconds(30))
            {
                refusedFast++;
                await Task.Delay(50, ct);
            }
        }
        Assert.InRange(watch.Elapsed, TimeSpan.FromSeconds(0.3), TimeSpan.FromSeconds(30));
        Assert.True(refusedFast > 0);
        Assert.True(guard.Available);
        Assert.Null(guard.UnavailableSince);
        Assert.Equal(CircuitState.Closed, guard.Circuit);
        Assert.Equal(1, guard.Outages);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_storage_that_accepts_but_never_answers_costs_a_call_its_deadline_not_its_life()
    {
        var ct = TestContext.Current.CancellationToken;
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        var port = ((IPEndPoint)silent.LocalEndpoint).Port;
        // The SDK would wait 60 s for an answer; the guard's deadline gives up after 0.5 s.
        var hung = ClientsOn(port, TimeSpan.FromSeconds(60)).Table(StorageLayout.RoutesTable);
        var guard = Guard(Fast with { Deadline = TimeSpan.FromSeconds(0.5) });
        var watch = Stopwatch.StartNew();
        var error = await Assert.ThrowsAsync<StorageUnavailableException>(() =>
            guard.RunAsync(token => hung.GetEntityIfExistsAsync<Azure.Data.Tables.TableEntity>("m", "r", cancellationToken: token), ct));
        watch.Stop();
        Assert.Contains("did not answer within 0.5 s", error.Message, StringComparison.Ordinal);
        Assert.InRange(watch.Elapsed, TimeSpan.FromSeconds(0.4), TimeSpan.FromSeconds(30));
        Assert.False(guard.Available);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_refusal_passes_through_and_counts_as_storage_answering()
    {
        var ct = TestContext.Current.CancellationToken;
        var guard = Guard();
        var table = azurite.Clients.Table(StorageLayout.RoutesTable);
        for (var i = 0; i < 4; i++)
        {
            var missing = await Assert.ThrowsAsync<RequestFailedException>(() =>
                guard.RunAsync(token => table.GetEntityAsync<Azure.Data.Tables.TableEntity>("no-such-model", "x", cancellationToken: token), ct));
            Assert.Equal(404, missing.Status);
        }
        Assert.True(guard.Available);
        Assert.Equal(CircuitState.Closed, guard.Circuit);
        Assert.Equal(0, guard.Outages);
    }

    [Fact(Timeout = 60_000)]
    public async Task The_callers_own_cancellation_is_not_an_outage()
    {
        var ct = TestContext.Current.CancellationToken;
        var guard = Guard();
        using var cancelled = CancellationTokenSource.CreateLinkedTokenSource(ct);
        await cancelled.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            guard.RunAsync(token => azurite.Clients.Table(StorageLayout.RoutesTable).GetEntityIfExistsAsync<Azure.Data.Tables.TableEntity>("m", "r", cancellationToken: token), cancelled.Token));
        Assert.True(guard.Available);
        Assert.Equal(CircuitState.Closed, guard.Circuit);
    }
}
