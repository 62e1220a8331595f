using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Blobs.Specialized;
using Lepton.Shared.Configuration;
using Lepton.Shared.Storage;

namespace Lepton.Shared.Models;

/// <summary>A model file in the store, with the sha256 of its bytes.</summary>
public sealed record StoredModel(string Model, string Version, string BlobPath, string Sha256, long Size);

/// <summary>
/// The model store over Blob storage: model files, manifests, datasets and reports (DESIGN.md §2).
/// </summary>
/// <remarks>
/// Uploads stream in blocks, hashing as they go, and commit the block list only when the whole
/// file is within the size limit, so an oversize or interrupted upload leaves no blob behind; the
/// commit is conditional (<c>If-None-Match: *</c>), so a version's file is written once. <b>A
/// model's sha256 is always computed from the bytes read, never taken from blob metadata</b> (the
/// <c>sha256</c> metadata written on upload is a hint for other tools, never the truth): a forged
/// value there must not make another model's cached bytes stand in for the upload. The local cache
/// is content-addressed (<c>{sha[:2]}/{sha}.onnx</c>), written atomically (a temporary file renamed
/// into place) and re-hashed before every use.
/// </remarks>
public sealed class ModelStore(StorageClients storage, ModelStoreOptions options)
{
    public const string ModelFile = "model.onnx";
    private const string ShaMetadata = "sha256";
    private const int BlockBytes = 4 * 1024 * 1024;

    private readonly BlobContainerClient _models = storage.Container(StorageLayout.ModelsContainer);
    private readonly BlobContainerClient _datasets = storage.Container(StorageLayout.DatasetsContainer);
    private readonly BlobContainerClient _reports = storage.Container(StorageLayout.ReportsContainer);

    public long MaxModelBytes => options.MaxModelBytes;

    /// <summary><c>{model}/{version}/model.onnx</c>, validating both names.</summary>
    public static string ModelBlobPath(string model, string version)
    {
        ModelName.Validate(model);
        SemVer.Parse(version);
        return $"{model}/{version}/{ModelFile}";
    }

    /// <summary><c>{model}/{version}/model.onnx</c> → (model, version); anything else is not a model upload.</summary>
    public static (string Model, string Version) ParseModelBlobPath(string path)
    {
        var parts = path.Trim('/').Split('/');
        if (parts.Length != 3 || parts[2] != ModelFile)
        {
            throw new InvalidInputException(
                $"blob {ModelName.Quote(path)} is not a model upload: expected models/<model>/<version>/{ModelFile}");
        }
        ModelName.Validate(parts[0]);
        SemVer.Parse(parts[1]);
        return (parts[0], parts[1]);
    }

    // -- models -----------------------------------------------------------------------------------

    /// <summary>
    /// Streams <paramref name="source"/> to <c>models/{model}/{version}/model.onnx</c>; idempotent
    /// for the same content, a <see cref="VersionConflictException"/> for different content. The
    /// manifest, if any, is written first, so whatever reacts to the model blob finds it.
    /// </summary>
    public async Task<StoredModel> UploadModelAsync(
        string model,
        string version,
        Stream source,
        Manifest? manifest = null,
        IProgress<long>? progress = null,
        CancellationToken cancellationToken = default)
    {
        var path = ModelBlobPath(model, version);
        var blob = _models.GetBlockBlobClient(path);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var blockIds = new List<string>();
        var buffer = new byte[BlockBytes];
        long size = 0;
        while (true)
        {
            var filled = await FillAsync(source, buffer, cancellationToken);
            if (filled == 0)
            {
                break;
            }
            size += filled;
            if (size > options.MaxModelBytes)
            {
                throw new PayloadTooLargeException(
                    $"{model} {version}: the model file is larger than the limit of {options.MaxModelBytes} bytes "
                    + $"({AppSettingNames.MaxModelBytes}); nothing was stored");
            }
            hash.AppendData(buffer, 0, filled);
            // Staged blocks stay invisible (and are garbage-collected) until the list is committed.
            var blockId = Convert.ToBase64String(Guid.NewGuid().ToByteArray());
            using (var block = new MemoryStream(buffer, 0, filled, writable: false))
            {
                await blob.StageBlockAsync(blockId, block, cancellationToken: cancellationToken);
            }
            blockIds.Add(blockId);
            progress?.Report(size);
        }
        if (size == 0)
        {
            throw new InvalidInputException($"{model} {version}: the model file is empty; nothing was stored");
        }
        var sha256 = Convert.ToHexStringLower(hash.GetHashAndReset());
        if (await ExistsAsync(path, cancellationToken))
        {
            return SameOrConflict(await FetchModelAsync(model, version, cancellationToken), sha256);
        }
        if (manifest is not null)
        {
            await PutManifestAsync(model, version, manifest, cancellationToken);
        }
        try
        {
            await blob.CommitBlockListAsync(blockIds, new CommitBlockListOptions
            {
                Metadata = new Dictionary<string, string> { [ShaMetadata] = sha256 },
                HttpHeaders = new BlobHttpHeaders { ContentType = "application/octet-stream" },
                // If-None-Match: * — a version's file is written once, even when two pushes race.
                Conditions = new BlobRequestConditions { IfNoneMatch = ETag.All },
            }, cancellationToken);
        }
        catch (RequestFailedException error) when (error.Status is 409 or 412)
        {
            return SameOrConflict(await FetchModelAsync(model, version, cancellationToken), sha256);
        }
        return new StoredModel(model, version, path, sha256, size);
    }

    private static StoredModel SameOrConflict(StoredModel existing, string sha256)
    {
        if (existing.Sha256 != sha256)
        {
            throw new VersionConflictException(
                $"{existing.Model} {existing.Version} already exists with different content (sha256 {existing.Sha256[..12]}…, "
                + $"this upload {sha256[..12]}…); model files are immutable: publish the change as a new version");
        }
        return existing;
    }

    private async Task<bool> ExistsAsync(string path, CancellationToken cancellationToken) =>
        (await _models.GetBlobClient(path).ExistsAsync(cancellationToken)).Value;

    /// <summary>
    /// Reads the model's bytes once, hashing them, and keeps them in the local cache under that
    /// hash: the sha256 a registration records always comes from here.
    /// </summary>
    public async Task<StoredModel> FetchModelAsync(string model, string version, CancellationToken cancellationToken = default)
    {
        var path = ModelBlobPath(model, version);
        var (sha256, size) = await DownloadToCacheAsync(path, expectedSha256: null, cancellationToken);
        return new StoredModel(model, version, path, sha256, size);
    }

    /// <summary>
    /// A local path to the model file whose bytes hash to <paramref name="sha256"/> (the registry's
    /// record), downloading it when the cache lacks it or holds anything else. A blob replaced after
    /// registration is a <see cref="VersionConflictException"/>.
    /// </summary>
    public async Task<string> GetVerifiedModelPathAsync(string model, string version, string sha256, CancellationToken cancellationToken = default)
    {
        var target = CachePath(sha256);
        if (File.Exists(target))
        {
            if (await HashFileAsync(target, cancellationToken) == sha256)
            {
                return target;
            }
            File.Delete(target); // corrupted or tampered with locally: fetch it again
        }
        await DownloadToCacheAsync(ModelBlobPath(model, version), sha256, cancellationToken);
        return target;
    }

    private string CachePath(string sha256) => Path.Combine(options.CacheDir, sha256[..2], sha256 + ".onnx");

    private async Task<(string Sha256, long Size)> DownloadToCacheAsync(string path, string? expectedSha256, CancellationToken cancellationToken)
    {
        var blob = _models.GetBlobClient(path);
        BlobDownloadStreamingResult download;
        try
        {
            download = (await blob.DownloadStreamingAsync(cancellationToken: cancellationToken)).Value;
        }
        catch (RequestFailedException error) when (error.Status == 404)
        {
            throw new BlobNotFoundException($"no model file at models/{path}");
        }
        using var _ = download;
        if (download.Details.ContentLength > options.MaxModelBytes)
        {
            throw new PayloadTooLargeException(
                $"models/{path} is {download.Details.ContentLength} bytes, over the limit of {options.MaxModelBytes} ({AppSettingNames.MaxModelBytes})");
        }
        Directory.CreateDirectory(options.CacheDir);
        var temporary = Path.Combine(options.CacheDir, $".{Guid.NewGuid():N}.part");
        try
        {
            string sha256;
            long size;
            await using (var file = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true))
            {
                (sha256, size) = await CopyHashingAsync(download.Content, file, options.MaxModelBytes, path, cancellationToken);
            }
            if (expectedSha256 is not null && sha256 != expectedSha256)
            {
                throw new VersionConflictException(
                    $"models/{path} has sha256 {sha256[..12]}…, but the registry recorded {expectedSha256[..12]}…: "
                    + "the blob was replaced after registration; publish the change as a new version");
            }
            var target = CachePath(sha256);
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Move(temporary, target, overwrite: true); // atomic: readers never see a partial file
            return (sha256, size);
        }
        finally
        {
            File.Delete(temporary);
        }
    }

    private static async Task<(string Sha256, long Size)> CopyHashingAsync(
        Stream source, Stream destination, long limit, string path, CancellationToken cancellationToken)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 16];
        long size = 0;
        int read;
        while ((read = await source.ReadAsync(buffer, cancellationToken)) > 0)
        {
            size += read;
            if (size > limit)
            {
                throw new PayloadTooLargeException($"models/{path} is over the limit of {limit} bytes ({AppSettingNames.MaxModelBytes})");
            }
            hash.AppendData(buffer, 0, read);
            await destination.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
        }
        return (Convert.ToHexStringLower(hash.GetHashAndReset()), size);
    }

    private static async Task<string> HashFileAsync(string path, CancellationToken cancellationToken)
    {
        await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, useAsync: true);
        return Convert.ToHexStringLower(await SHA256.HashDataAsync(file, cancellationToken));
    }

    private static async Task<int> FillAsync(Stream source, byte[] buffer, CancellationToken cancellationToken)
    {
        var filled = 0;
        int read;
        while (filled < buffer.Length && (read = await source.ReadAsync(buffer.AsMemory(filled), cancellationToken)) > 0)
        {
            filled += read;
        }
        return filled;
    }

    // -- manifests --------------------------------------------------------------------------------

    public async Task PutManifestAsync(string model, string version, Manifest manifest, CancellationToken cancellationToken = default)
    {
        ModelBlobPath(model, version);
        await _models.GetBlobClient($"{model}/{version}/{Manifest.FileName}")
            .UploadAsync(BinaryData.FromBytes(manifest.ToUtf8Bytes()), overwrite: true, cancellationToken);
    }

    /// <summary>The version's parsed manifest; <c>null</c> when it has none; invalid ones throw.</summary>
    public async Task<Manifest?> GetManifestAsync(string model, string version, CancellationToken cancellationToken = default)
    {
        ModelBlobPath(model, version);
        var blob = _models.GetBlobClient($"{model}/{version}/{Manifest.FileName}");
        try
        {
            var properties = await blob.GetPropertiesAsync(cancellationToken: cancellationToken);
            if (properties.Value.ContentLength > Manifest.MaxBytes)
            {
                throw new InvalidManifestException($"{Manifest.FileName} is larger than {Manifest.MaxBytes} bytes");
            }
            var content = await blob.DownloadContentAsync(cancellationToken);
            return Manifest.Parse(content.Value.Content.ToMemory().Span);
        }
        catch (RequestFailedException error) when (error.Status == 404)
        {
            return null;
        }
    }

    // -- datasets ---------------------------------------------------------------------------------

    public async Task<string> PutDatasetAsync(string model, string name, Dataset dataset, CancellationToken cancellationToken = default)
    {
        var path = DatasetPath(model, name);
        dataset.Validate(name);
        await _datasets.GetBlobClient(path).UploadAsync(BinaryData.FromBytes(NpzDatasets.Write(dataset)), overwrite: true, cancellationToken);
        return path;
    }

    /// <summary>Uploads an <c>.npz</c> file as it is, after checking it parses as a dataset.</summary>
    public async Task<string> PutDatasetFileAsync(string model, string name, byte[] npz, CancellationToken cancellationToken = default)
    {
        var path = DatasetPath(model, name);
        using (var stream = new MemoryStream(npz, writable: false))
        {
            NpzDatasets.Read(stream, $"datasets/{path}").Validate(name);
        }
        await _datasets.GetBlobClient(path).UploadAsync(BinaryData.FromBytes(npz), overwrite: true, cancellationToken);
        return path;
    }

    public async Task<Dataset> GetDatasetAsync(string model, string name, CancellationToken cancellationToken = default)
    {
        var path = DatasetPath(model, name);
        try
        {
            var content = await _datasets.GetBlobClient(path).DownloadContentAsync(cancellationToken);
            using var stream = content.Value.Content.ToStream();
            return NpzDatasets.Read(stream, $"datasets/{path}").Validate(name);
        }
        catch (RequestFailedException error) when (error.Status == 404)
        {
            throw new BlobNotFoundException($"dataset datasets/{path} not found; upload it with `lepton push --dataset-file`");
        }
    }

    private static string DatasetPath(string model, string name)
    {
        ModelName.Validate(model);
        if (!ModelName.IsValid(name))
        {
            throw new InvalidDatasetException($"dataset name {ModelName.Quote(name)} must be lowercase letters, digits and hyphens");
        }
        return $"{model}/{name}.npz";
    }

    // -- reports ----------------------------------------------------------------------------------

    /// <summary>Writes <c>reports/{model}/{version}/{stage}.json</c> (strict JSON, indented).</summary>
    public async Task<string> PutReportAsync(string model, string version, string stage, JsonNode report, CancellationToken cancellationToken = default)
    {
        var path = ReportPath(model, version, stage, "json");
        var body = Encoding.UTF8.GetBytes(report.ToJsonString(LeptonJson.Indented));
        await _reports.GetBlobClient(path).UploadAsync(
            BinaryData.FromBytes(body),
            new BlobUploadOptions { HttpHeaders = new BlobHttpHeaders { ContentType = "application/json" } },
            cancellationToken);
        return path;
    }

    public async Task<string> PutReportPngAsync(string model, string version, string stage, byte[] png, CancellationToken cancellationToken = default)
    {
        var path = ReportPath(model, version, stage, "png");
        await _reports.GetBlobClient(path).UploadAsync(
            BinaryData.FromBytes(png),
            new BlobUploadOptions { HttpHeaders = new BlobHttpHeaders { ContentType = "image/png" } },
            cancellationToken);
        return path;
    }

    public async Task<JsonNode> GetReportAsync(string model, string version, string stage, CancellationToken cancellationToken = default)
    {
        var path = ReportPath(model, version, stage, "json");
        try
        {
            var content = await _reports.GetBlobClient(path).DownloadContentAsync(cancellationToken);
            return JsonNode.Parse(content.Value.Content.ToString()) ?? new JsonObject();
        }
        catch (RequestFailedException error) when (error.Status == 404)
        {
            throw new BlobNotFoundException($"no report at reports/{path}");
        }
        catch (JsonException)
        {
            throw new InvalidInputException($"reports/{path} is not valid JSON");
        }
    }

    /// <summary>File names of a version's reports (e.g. <c>canary.json</c>, <c>canary.png</c>).</summary>
    public async Task<IReadOnlyList<string>> ListReportsAsync(string model, string version, CancellationToken cancellationToken = default)
    {
        ModelBlobPath(model, version);
        var prefix = $"{model}/{version}/";
        var names = new List<string>();
        await foreach (var item in _reports.GetBlobsAsync(new GetBlobsOptions { Prefix = prefix }, cancellationToken))
        {
            names.Add(item.Name[prefix.Length..]);
        }
        return names.Order(StringComparer.Ordinal).ToList();
    }

    private static string ReportPath(string model, string version, string stage, string extension)
    {
        ModelBlobPath(model, version);
        if (stage.Length == 0 || !stage.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '-' or '_'))
        {
            throw new InvalidInputException($"report name {ModelName.Quote(stage)} must be lowercase letters, digits, - and _");
        }
        return $"{model}/{version}/{stage}.{extension}";
    }
}
