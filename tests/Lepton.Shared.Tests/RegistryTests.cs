using System.Text.Json.Nodes;
using Azure.Data.Tables;
using Lepton.Shared.Lifecycle;
using Lepton.Shared.Registry;
using Lepton.Shared.Storage;
using Lepton.Testing;

namespace Lepton.Shared.Tests;

public sealed class RegistryTests(AzuriteFixture azurite)
{
    private const string Sha = "aa11bb22cc33dd44ee55ff6600112233445566778899aabbccddeeff00112233";
    private readonly ModelRegistry _registry = new(azurite.Clients, TimeProvider.System);
    private readonly string _model = TestNames.Model();

    private Task<ModelVersion> Register(string version, string sha = Sha) =>
        _registry.RegisterVersionAsync(_model, version, sha, 1234, $"{_model}/{version}/model.onnx", "test", cancellationToken: TestContext.Current.CancellationToken);

    private Task<ModelVersion> Move(string version, Stage to, Stage? from = null, string actor = "test") =>
        _registry.TransitionAsync(_model, version, to, $"to {to}", actor, from, cancellationToken: TestContext.Current.CancellationToken);

    [Fact(Timeout = 60_000)]
    public async Task Registers_a_version_once_and_audits_it()
    {
        var first = await Register("1.0.0");
        var again = await Register("1.0.0");
        Assert.Equal(Stage.Registered, first.Stage);
        Assert.Equal(first.Sha256, again.Sha256);
        var history = await _registry.HistoryAsync(_model, "1.0.0", TestContext.Current.CancellationToken);
        Assert.Equal(AuditKinds.Registered, Assert.Single(history).Kind);
    }

    [Fact(Timeout = 60_000)]
    public async Task The_same_version_with_other_bytes_is_a_conflict()
    {
        var ct = TestContext.Current.CancellationToken;
        await Register("1.0.0").WaitAsync(ct);
        var error = await Assert.ThrowsAsync<VersionConflictException>(() => Register("1.0.0", new string('b', 64)).WaitAsync(ct));
        Assert.Contains("immutable", error.Message);
        var clash = await Assert.ThrowsAsync<VersionConflictException>(() => Register("1.0.0+build.2"));
        Assert.Contains("same SemVer precedence", clash.Message);
    }

    [Fact(Timeout = 60_000)]
    public async Task Lists_versions_in_semver_order_not_text_order()
    {
        foreach (var v in new[] { "1.10.0", "1.2.0", "1.2.0-rc.1", "0.9.0" })
        {
            await Register(v);
        }
        var versions = await _registry.ListVersionsAsync(_model, TestContext.Current.CancellationToken);
        Assert.Equal(["0.9.0", "1.2.0-rc.1", "1.2.0", "1.10.0"], versions.Select(v => v.Version));
        Assert.Contains(_model, await _registry.ListModelsAsync(TestContext.Current.CancellationToken));
    }

    [Fact(Timeout = 60_000)]
    public async Task Transitions_follow_the_state_machine_and_write_the_audit_trail()
    {
        await Register("1.0.0");
        await Move("1.0.0", Stage.Validating, Stage.Registered);
        await Assert.ThrowsAsync<IllegalTransitionException>(() => Move("1.0.0", Stage.Production));
        var evaluating = await Move("1.0.0", Stage.Evaluating, Stage.Validating, actor: "alice");
        Assert.Equal(Stage.Evaluating, evaluating.Stage);
        Assert.Equal(2, evaluating.Sequence);
        var history = await _registry.HistoryAsync(_model, "1.0.0", TestContext.Current.CancellationToken);
        Assert.Equal(["registered", "validating", "evaluating"], history.Select(e => e.To));
        Assert.Equal("alice", history[^1].Actor);
        Assert.Equal("validating", history[^1].From);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_retried_transition_returns_the_stored_record_and_audits_once()
    {
        await Register("1.0.0");
        await Move("1.0.0", Stage.Validating, Stage.Registered);
        var retried = await Move("1.0.0", Stage.Validating, Stage.Registered);
        Assert.Equal(1, retried.Sequence);
        Assert.Equal(2, (await _registry.HistoryAsync(_model, "1.0.0", TestContext.Current.CancellationToken)).Count);
    }

    [Fact(Timeout = 60_000)]
    public async Task Of_two_concurrent_writers_one_wins_and_the_other_is_told_why()
    {
        await Register("1.0.0");
        await Move("1.0.0", Stage.Validating, Stage.Registered);
        var outcomes = await Task.WhenAll(
            Attempt(() => Move("1.0.0", Stage.Evaluating, Stage.Validating)),
            Attempt(() => Move("1.0.0", Stage.Rejected, Stage.Validating)));
        Assert.Single(outcomes, o => o is null);
        var loser = Assert.Single(outcomes, o => o is not null)!;
        Assert.IsType<ConcurrencyConflictException>(loser);
        Assert.Contains("another actor", loser.Message);
        var final = await _registry.GetVersionAsync(_model, "1.0.0", TestContext.Current.CancellationToken);
        Assert.Contains(final.Stage, new[] { Stage.Evaluating, Stage.Rejected });
        Assert.Equal(3, (await _registry.HistoryAsync(_model, "1.0.0", TestContext.Current.CancellationToken)).Count);
    }

    private static async Task<Exception?> Attempt(Func<Task> action)
    {
        try
        {
            await action();
            return null;
        }
        catch (LeptonException error)
        {
            return error;
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task An_audit_event_lost_in_a_crash_is_repaired_exactly_once()
    {
        await Register("1.0.0");
        await Move("1.0.0", Stage.Validating, Stage.Registered);
        var record = await _registry.GetVersionAsync(_model, "1.0.0", TestContext.Current.CancellationToken);
        // The crash: the version row was written, the events row never was.
        await azurite.Clients.Table(StorageLayout.EventsTable).DeleteEntityAsync(
            _model, ModelRegistry.EventKey(record.SemVer.SortKey, 1), cancellationToken: TestContext.Current.CancellationToken);
        var repaired = await _registry.HistoryAsync(_model, "1.0.0", TestContext.Current.CancellationToken);
        Assert.Equal(["registered", "validating"], repaired.Select(e => e.To));
        await Move("1.0.0", Stage.Evaluating, Stage.Validating);
        Assert.Equal(3, (await _registry.HistoryAsync(_model, cancellationToken: TestContext.Current.CancellationToken)).Count);
    }

    [Fact(Timeout = 60_000)]
    public async Task Annotations_merge_and_survive_transitions()
    {
        await Register("1.0.0");
        var signature = new Signature(
            [new TensorSpec("input", "float", [null, 64])],
            [new TensorSpec("label", "int64", [null])]);
        await _registry.AnnotateAsync(_model, "1.0.0", signature: signature, instanceId: "lepton-x", policyOverrides: new JsonObject { ["window_s"] = 5 },
            cancellationToken: TestContext.Current.CancellationToken);
        await Move("1.0.0", Stage.Validating, Stage.Registered);
        var record = await _registry.GetVersionAsync(_model, "1.0.0", TestContext.Current.CancellationToken);
        Assert.Equal(signature, record.Signature);
        Assert.Equal("lepton-x", record.InstanceId);
        Assert.Equal(5, record.PolicyOverrides["window_s"]!.GetValue<int>());
    }

    [Fact(Timeout = 60_000)]
    public async Task Routes_start_empty_and_take_only_versions_in_the_right_stage()
    {
        var empty = await _registry.GetRoutesAsync(_model, TestContext.Current.CancellationToken);
        Assert.Equal(0, empty.Generation);
        Assert.Null(empty.Production);
        await Register("1.0.0");
        var error = await Assert.ThrowsAsync<InvalidRoutesException>(() =>
            _registry.SetRoutesAsync(empty with { Production = "1.0.0" }, "test", "try", TestContext.Current.CancellationToken));
        Assert.Contains("production version 1.0.0 is in stage 'registered'", error.Message);
        await Move("1.0.0", Stage.Validating);
        await Move("1.0.0", Stage.Evaluating);
        await Move("1.0.0", Stage.Production);
        var set = await _registry.SetRoutesAsync(empty with { Production = "1.0.0", StickyHeader = "x-user-id" }, "test", "first", TestContext.Current.CancellationToken);
        Assert.Equal(1, set.Generation);
        Assert.Equal("x-user-id", set.StickyHeader);
        var stale = await Assert.ThrowsAsync<ConcurrencyConflictException>(() =>
            _registry.SetRoutesAsync(empty with { Production = "1.0.0", ETag = "W/\"datetime'2000-01-01T00%3A00%3A00Z'\"" }, "test", "stale", TestContext.Current.CancellationToken));
        Assert.Contains("changed by another actor", stale.Message);
        var history = await _registry.HistoryAsync(_model, cancellationToken: TestContext.Current.CancellationToken);
        Assert.Single(history, e => e.Kind == AuditKinds.Routes);
    }

    [Theory(Timeout = 60_000)]
    [InlineData(20_000, null, "candidate_weight_bp must be within 0..10000")]
    [InlineData(500, null, "candidate_weight_bp > 0 needs a candidate version")]
    [InlineData(500, "1.0.0", "candidate and production must be different versions")]
    public async Task Invalid_routes_are_refused_with_every_problem(int weight, string? candidate, string expected)
    {
        var routes = new Routes { Model = _model, Production = "1.0.0", Candidate = candidate, CandidateWeightBp = weight };
        var error = await Assert.ThrowsAsync<InvalidRoutesException>(() => _registry.SetRoutesAsync(routes, "test", "bad", TestContext.Current.CancellationToken));
        Assert.Contains(expected, error.Message);
        Assert.Equal(0, (await _registry.GetRoutesAsync(_model, TestContext.Current.CancellationToken)).Generation);
    }

    [Fact(Timeout = 60_000)]
    public async Task Missing_versions_say_how_to_list_them()
    {
        var error = await Assert.ThrowsAsync<VersionNotFoundException>(() => _registry.GetVersionAsync(_model, "9.9.9", TestContext.Current.CancellationToken));
        Assert.Contains($"lepton status {_model}", error.Message);
        Assert.Null(await _registry.FindVersionAsync(_model, "9.9.9", TestContext.Current.CancellationToken));
    }

    [Fact(Timeout = 60_000)]
    public async Task Rows_are_partitioned_by_model()
    {
        await Register("1.0.0");
        var rows = azurite.Clients.Table(StorageLayout.VersionsTable).QueryAsync<TableEntity>(e => e.PartitionKey == _model, cancellationToken: TestContext.Current.CancellationToken);
        await foreach (var row in rows)
        {
            Assert.Equal(_model, row.PartitionKey);
            Assert.Equal(Shared.SemVer.Parse("1.0.0").SortKey, row.RowKey);
        }
    }
}
