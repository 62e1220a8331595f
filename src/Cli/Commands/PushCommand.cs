using System.CommandLine;
using System.Globalization;
using Lepton.Cli.Api;
using Lepton.Cli.Views;
using Lepton.Shared;
using Lepton.Shared.Configuration;
using Lepton.Shared.Models;
using Lepton.Shared.Storage;
using Spectre.Console;

namespace Lepton.Cli.Commands;

/// <summary>
/// <c>lepton push MODEL VERSION FILE</c>: uploads straight to blob storage, as in Azure — the new
/// <c>models/</c> blob is what starts the lifecycle — then follows it until a final stage.
/// </summary>
internal static class PushCommand
{
    public static Command Create()
    {
        var api = new ApiOptions();
        var model = new Argument<string>("model") { Description = "Model name (lowercase letters, digits, hyphens)" };
        var version = new Argument<string>("version") { Description = "Strict SemVer version, e.g. 1.2.0" };
        var file = new Argument<FileInfo>("file") { Description = "The .onnx model file" };
        var manifest = new Option<FileInfo?>("--manifest") { Description = "lepton.json manifest to upload beside the model" };
        var dataset = new Option<string?>("--dataset") { Description = "Dataset name (datasets/<model>/<name>.npz); defaults to the manifest's" };
        var datasetFile = new Option<FileInfo?>("--dataset-file") { Description = ".npz file with arrays X and y to upload as the dataset" };
        var noFollow = new Option<bool>("--no-follow") { Description = "Return after the upload instead of following the lifecycle" };
        var timeout = new Option<double>("--timeout") { Description = "Seconds to follow at most", DefaultValueFactory = _ => 600 };
        var command = new Command("push", "Upload a model version (and its manifest and dataset); the upload starts its lifecycle")
        {
            model, version, file, manifest, dataset, datasetFile, noFollow, timeout,
        };
        api.AddTo(command, storage: true);
        command.SetAction((parse, cancellationToken) => CommandRunner.RunAsync("push", async () =>
        {
            var name = ModelName.Validate(parse.GetValue(model));
            var semver = SemVer.Parse(parse.GetValue(version)).ToString();
            var modelFile = parse.GetValue(file)!;
            if (!modelFile.Exists)
            {
                throw new InvalidInputException($"model file {modelFile.Name} does not exist; pass the path of a .onnx file");
            }
            var parsed = parse.GetValue(manifest) is { } manifestFile ? ReadManifest(manifestFile) : null;
            var datasetName = parse.GetValue(dataset) ?? parsed?.Dataset;
            var datasetBytes = parse.GetValue(datasetFile) is { } npz ? await ReadFileAsync(npz, "dataset", cancellationToken) : null;
            if (datasetBytes is not null && datasetName is null)
            {
                throw new InvalidInputException("--dataset-file needs a dataset name: pass --dataset NAME, or name it in the manifest's \"dataset\"");
            }
            if (datasetName is not null && parse.GetValue(dataset) is not null)
            {
                parsed = (parsed ?? new Manifest()) with { Dataset = datasetName };
            }
            var follow = !parse.GetValue(noFollow);
            using var client = api.Client(parse);
            if (follow)
            {
                // A wrong key or an API that is down is reported before anything is uploaded: the
                // upload starts the lifecycle, which nobody would then be following.
                await client.ModelsAsync(cancellationToken);
            }
            var storage = new StorageClients(ClientSettings.Storage(parse.GetValue(api.Storage)));
            var store = new ModelStore(storage, new ModelStoreOptions { CacheDir = Path.Combine(Path.GetTempPath(), "lepton-cli-cache") });
            if (datasetBytes is not null)
            {
                var path = await store.PutDatasetFileAsync(name, datasetName!, datasetBytes, cancellationToken);
                AnsiConsole.MarkupLineInterpolated($"dataset uploaded to datasets/{path}");
            }
            var stored = await UploadAsync(store, name, semver, modelFile, parsed, cancellationToken);
            AnsiConsole.MarkupLineInterpolated($"stored models/{stored.BlobPath} (sha256 {stored.Sha256[..12]}…, {stored.Size} B)");
            if (!follow)
            {
                return 0;
            }
            var stage = await FollowAsync(client, name, semver, TimeSpan.FromSeconds(parse.GetValue(timeout)), cancellationToken);
            // Like `kubectl rollout status`: a rollout that failed is a non-zero exit, for scripts.
            return stage is "rejected" or "rolled_back" ? 3 : 0;
        }));
        return command;
    }

    private static Manifest ReadManifest(FileInfo file)
    {
        if (!file.Exists)
        {
            throw new InvalidInputException($"manifest {file.Name} does not exist");
        }
        try
        {
            return Manifest.Parse(File.ReadAllBytes(file.FullName));
        }
        catch (InvalidManifestException error)
        {
            throw new InvalidManifestException($"{file.Name}: {error.Message}");
        }
    }

    private static async Task<byte[]> ReadFileAsync(FileInfo file, string what, CancellationToken cancellationToken)
    {
        if (!file.Exists)
        {
            throw new InvalidInputException($"{what} file {file.Name} does not exist");
        }
        return await File.ReadAllBytesAsync(file.FullName, cancellationToken);
    }

    private static async Task<StoredModel> UploadAsync(ModelStore store, string model, string version, FileInfo file, Manifest? manifest, CancellationToken cancellationToken)
    {
        if (!AnsiConsole.Profile.Capabilities.Interactive)
        {
            // Piped or logged: a progress bar cannot redraw, so one line before and one after.
            AnsiConsole.MarkupLineInterpolated($"uploading {model} {version} ({file.Length} B)…");
            await using var source = file.OpenRead();
            return await store.UploadModelAsync(model, version, source, manifest, cancellationToken: cancellationToken);
        }
        StoredModel? stored = null;
        await AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new DownloadedColumn(), new TransferSpeedColumn())
            .StartAsync(async context =>
            {
                var task = context.AddTask($"uploading {model} {version}", maxValue: Math.Max(1, file.Length));
                await using var stream = file.OpenRead();
                stored = await store.UploadModelAsync(model, version, stream, manifest, new Progress<long>(sent => task.Value = sent), cancellationToken);
                task.Value = task.MaxValue;
            });
        return stored!;
    }

    /// <summary>Prints each stage change (and step change) of a version until it reaches a final stage; returns that stage.</summary>
    public static async Task<string> FollowAsync(LeptonApiClient client, string model, string version, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + timeout;
        var lastStage = "";
        var lastStep = "";
        while (DateTime.UtcNow < deadline)
        {
            System.Text.Json.Nodes.JsonObject detail;
            try
            {
                detail = await client.VersionAsync(model, version, cancellationToken);
            }
            catch (ApiException error) when (error.Status == 404)
            {
                if (lastStage != "waiting")
                {
                    AnsiConsole.MarkupLine("waiting for the lifecycle to pick up the upload…");
                    lastStage = "waiting";
                }
                await Task.Delay(500, cancellationToken);
                continue;
            }
            var record = detail["version"] as System.Text.Json.Nodes.JsonObject ?? [];
            var stage = ModelView.Text(record["stage"]);
            var step = ModelView.Step(detail["lifecycle"]);
            var now = DateTime.Now.ToString("HH:mm:ss", CultureInfo.InvariantCulture);
            if (stage != lastStage)
            {
                var reason = ModelView.Text(record["reason"]);
                AnsiConsole.MarkupLineInterpolated($"{now} {model} {version}: [bold]{stage}[/]{(reason.Length > 0 ? " — " + reason : "")}");
                lastStage = stage;
            }
            else if (step.Length > 0 && step != lastStep)
            {
                AnsiConsole.MarkupLineInterpolated($"[grey]{now}   {step}[/]");
            }
            lastStep = step;
            if (ModelView.FinalStages.Contains(stage))
            {
                return stage;
            }
            await Task.Delay(500, cancellationToken);
        }
        AnsiConsole.MarkupLineInterpolated($"still {lastStage} after {timeout.TotalSeconds:0} s; keep watching with `lepton watch {model}`");
        return lastStage;
    }
}
