using System.CommandLine;
using System.Text.Json.Nodes;
using Lepton.Cli.Views;
using Lepton.Shared;
using Spectre.Console;
using Spectre.Console.Json;

namespace Lepton.Cli.Commands;

/// <summary>
/// <c>lepton approve|promote|rollback|abort MODEL VERSION</c> (one durable external event to the
/// running lifecycle) and <c>lepton infer</c> (one Open Inference Protocol call to the worker).
/// </summary>
internal static class OperatorCommands
{
    private static readonly (string Action, string Summary)[] Actions =
    [
        ("approve", "Approve a version waiting for approval (major versions)"),
        ("promote", "Promote a version in rollout to production now"),
        ("rollback", "Roll a version back: traffic off it, stage rolled_back"),
        ("abort", "Abort a version's lifecycle"),
    ];

    public static IEnumerable<Command> Create() => Actions.Select(a => Operator(a.Action, a.Summary));

    private static Command Operator(string action, string summary)
    {
        var api = new ApiOptions();
        var model = new Argument<string>("model");
        var version = new Argument<string>("version");
        var reason = new Option<string>("--reason") { Description = "Why (recorded in the audit log)", DefaultValueFactory = _ => "" };
        var command = new Command(action, summary) { model, version, reason };
        api.AddTo(command);
        command.SetAction((parse, cancellationToken) => CommandRunner.RunAsync(action, async () =>
        {
            using var client = api.Client(parse);
            var name = ModelName.Validate(parse.GetValue(model));
            var semver = SemVer.Parse(parse.GetValue(version)).ToString();
            var result = await client.OperateAsync(name, semver, action, parse.GetValue(reason) ?? "", cancellationToken);
            var instance = ModelView.Text(result["instance_id"] ?? result["id"]);
            AnsiConsole.MarkupLineInterpolated($"{action} sent to {name} {semver}{(instance.Length > 0 ? $" (instance {instance})" : "")}");
            return 0;
        }));
        return command;
    }

    public static Command Infer()
    {
        var api = new ApiOptions();
        var model = new Argument<string>("model");
        var data = new Option<string>("--data") { Description = "JSON: a list of rows (e.g. '[[0, 1, 2]]'), or a full v2 request", Required = true };
        var version = new Option<string?>("--version") { Description = "Pin a version (the default is routed)" };
        var command = new Command("infer", "Send an inference request to the worker (Open Inference Protocol)") { model, data, version };
        api.AddTo(command, worker: true);
        command.SetAction((parse, cancellationToken) => CommandRunner.RunAsync("infer", async () =>
        {
            using var client = api.Client(parse);
            var name = ModelName.Validate(parse.GetValue(model));
            JsonNode? parsed;
            try
            {
                parsed = JsonNode.Parse(parse.GetValue(data)!);
            }
            catch (System.Text.Json.JsonException)
            {
                throw new InvalidInputException("--data is not JSON; pass e.g. '[[0, 1, 2]]' or a v2 request object");
            }
            var body = parsed as JsonObject ?? await V2RequestAsync(client, name, parsed);
            var pinned = parse.GetValue(version) is { } v ? SemVer.Parse(v).ToString() : null;
            var result = await client.InferAsync(name, body, pinned, cancellationToken: cancellationToken);
            AnsiConsole.Write(new JsonText(ModelView.Json(result)));
            AnsiConsole.WriteLine();
            return 0;
        }));
        return command;
    }

    /// <summary>A v2 request for a list of rows, using the model's first input (name, datatype) from the worker's metadata.</summary>
    internal static async Task<JsonObject> V2RequestAsync(Api.LeptonApiClient client, string model, JsonNode? rows)
    {
        if (rows is not JsonArray array || array.Count == 0)
        {
            throw new InvalidInputException("--data must be a non-empty list of rows of numbers");
        }
        var matrix = array[0] is JsonArray ? array.Select(r => r as JsonArray ?? throw Ragged()).ToList() : [array];
        var width = matrix[0].Count;
        if (width == 0 || matrix.Any(r => r.Count != width))
        {
            throw Ragged();
        }
        var values = new JsonArray();
        foreach (var value in matrix.SelectMany(r => r))
        {
            if (value is not JsonValue number || number.GetValueKind() != System.Text.Json.JsonValueKind.Number)
            {
                throw new InvalidInputException("--data rows must hold numbers only");
            }
            values.Add(number.DeepClone());
        }
        var meta = await client.WorkerModelAsync(model);
        var input = (meta["inputs"] as JsonArray)?.FirstOrDefault() as JsonObject;
        return new JsonObject
        {
            ["inputs"] = new JsonArray(new JsonObject
            {
                ["name"] = ModelView.Text(input?["name"], "input"),
                ["datatype"] = ModelView.Text(input?["datatype"], "FP32"),
                ["shape"] = new JsonArray(matrix.Count, width),
                ["data"] = values,
            }),
        };
    }

    private static InvalidInputException Ragged() => new("--data must be a rectangular list of rows, e.g. '[[0, 1], [2, 3]]'");
}
