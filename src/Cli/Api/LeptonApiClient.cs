using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Lepton.Shared;

namespace Lepton.Cli.Api;

/// <summary>The API could not be reached, refused the caller, or answered with an error.</summary>
public sealed class ApiException(string message, int status) : LeptonException(message, KindFor(status), "api_error")
{
    /// <summary>The HTTP status, or 0 when nothing answered.</summary>
    public int Status { get; } = status;

    private static ErrorKind KindFor(int status) => status switch
    {
        400 => ErrorKind.InvalidInput,
        401 => ErrorKind.Unauthorized,
        403 => ErrorKind.Forbidden,
        404 => ErrorKind.NotFound,
        409 => ErrorKind.Conflict,
        413 => ErrorKind.TooLarge,
        0 or 502 or 503 or 504 => ErrorKind.Unavailable,
        _ => ErrorKind.Configuration,
    };
}

/// <summary>
/// A small client of Lepton's control-plane API (<c>/api</c>) and the worker's Open Inference
/// Protocol API, for the CLI and the demo. Every failure becomes an <see cref="ApiException"/>
/// whose message says what to do next: an unreachable local API suggests <c>make run</c>; a
/// refusal asks for the key; an error answer carries the server's message.
/// </summary>
public sealed class LeptonApiClient : IDisposable
{
    private readonly HttpClient _http;

    public LeptonApiClient(ClientSettings settings, HttpMessageHandler? handler = null)
    {
        Settings = settings;
        _http = handler is null ? new HttpClient() : new HttpClient(handler);
        _http.Timeout = TimeSpan.FromSeconds(30);
    }

    public ClientSettings Settings { get; }

    public void Dispose() => _http.Dispose();

    // -- control plane ----------------------------------------------------------------------------

    public Task<JsonNode?> HealthAsync(CancellationToken cancellationToken = default) =>
        ApiAsync(HttpMethod.Get, "health", null, cancellationToken);

    public async Task<IReadOnlyList<string>> ModelsAsync(CancellationToken cancellationToken = default)
    {
        var body = await ApiAsync(HttpMethod.Get, "models", null, cancellationToken);
        return body?["models"]?.AsArray().Select(m => m!.GetValue<string>()).ToList() ?? [];
    }

    public async Task<JsonObject> ModelAsync(string model, CancellationToken cancellationToken = default) =>
        Object(await ApiAsync(HttpMethod.Get, $"models/{Segment(model)}", null, cancellationToken));

    public async Task<JsonObject> VersionAsync(string model, string version, CancellationToken cancellationToken = default) =>
        Object(await ApiAsync(HttpMethod.Get, $"models/{Segment(model)}/versions/{Segment(version)}", null, cancellationToken));

    public async Task<JsonArray> HistoryAsync(string model, string version, CancellationToken cancellationToken = default)
    {
        var body = await ApiAsync(HttpMethod.Get, $"models/{Segment(model)}/versions/{Segment(version)}/history", null, cancellationToken);
        return body?["events"]?.AsArray() ?? [];
    }

    /// <summary>The model's whole audit log: every version's transitions and every traffic change.</summary>
    public async Task<JsonArray> ModelHistoryAsync(string model, CancellationToken cancellationToken = default)
    {
        var body = await ApiAsync(HttpMethod.Get, $"models/{Segment(model)}/history", null, cancellationToken);
        return body?["events"]?.AsArray() ?? [];
    }

    /// <summary>Sends an operator command (approve, promote, rollback, abort) to a running lifecycle.</summary>
    public async Task<JsonObject> OperateAsync(string model, string version, string action, string reason, CancellationToken cancellationToken = default) =>
        Object(await ApiAsync(HttpMethod.Post, $"models/{Segment(model)}/versions/{Segment(version)}/{action}",
            new JsonObject { ["reason"] = reason }, cancellationToken));

    public async Task<JsonObject> StartLifecycleAsync(string model, string version, JsonObject? policy, CancellationToken cancellationToken = default) =>
        Object(await ApiAsync(HttpMethod.Post, $"models/{Segment(model)}/versions/{Segment(version)}/lifecycle",
            new JsonObject { ["policy"] = policy }, cancellationToken));

    public async Task<JsonObject> SetRoutesAsync(string model, JsonObject changes, CancellationToken cancellationToken = default) =>
        Object(await ApiAsync(HttpMethod.Put, $"models/{Segment(model)}/routes", changes, cancellationToken));

    // -- worker -------------------------------------------------------------------------------------

    /// <summary>An Open Inference Protocol infer call, routed or pinned to <paramref name="version"/>.</summary>
    public async Task<JsonObject> InferAsync(
        string model, JsonObject body, string? version = null, IReadOnlyDictionary<string, string>? headers = null, CancellationToken cancellationToken = default)
    {
        var path = $"/v2/models/{Segment(model)}" + (version is null ? "" : $"/versions/{Segment(version)}") + "/infer";
        using var request = new HttpRequestMessage(HttpMethod.Post, Settings.WorkerUrl.TrimEnd('/') + path)
        {
            Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"),
        };
        foreach (var (name, value) in headers ?? new Dictionary<string, string>())
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }
        return Object(await SendAsync(request, worker: true, cancellationToken));
    }

    public async Task<JsonObject> WorkerModelAsync(string model, CancellationToken cancellationToken = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"{Settings.WorkerUrl.TrimEnd('/')}/v2/models/{Segment(model)}");
        return Object(await SendAsync(request, worker: true, cancellationToken));
    }

    // -- plumbing -----------------------------------------------------------------------------------

    private async Task<JsonNode?> ApiAsync(HttpMethod method, string path, JsonNode? body, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(method, $"{Settings.ApiUrl.TrimEnd('/')}/api/{path}");
        if (body is not null)
        {
            request.Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
        }
        return await SendAsync(request, worker: false, cancellationToken);
    }

    private async Task<JsonNode?> SendAsync(HttpRequestMessage request, bool worker, CancellationToken cancellationToken)
    {
        if (Settings.Key is { Length: > 0 } key)
        {
            // The Functions host takes x-functions-key; the worker takes a bearer token.
            if (worker)
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
            }
            else
            {
                request.Headers.Add("x-functions-key", key);
            }
        }
        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, cancellationToken);
        }
        catch (Exception error) when (error is HttpRequestException or SocketException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
        {
            throw Unreachable(worker, error);
        }
        using (response)
        {
            var text = await response.Content.ReadAsStringAsync(cancellationToken);
            if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
            {
                var hint = (Settings.Key is { Length: > 0 }, Settings.IsLocal) switch
                {
                    (true, true) => $"the key sent is not this stack's; its key is in {ClientSettings.LocalKeyPath} (the CLI reads it when --key is not given)",
                    (false, true) => $"no key was sent and the local stack's key file {ClientSettings.LocalKeyPath} is missing: point {ClientSettings.DataDirVariable} at the stack's --data-dir, or pass the key with --key or {ClientSettings.ApiKeyVariable}",
                    (true, false) => $"the key sent was refused; pass the right one with --key or {ClientSettings.ApiKeyVariable}",
                    (false, false) => $"this API needs a key; pass it with --key or {ClientSettings.ApiKeyVariable}",
                };
                throw new ApiException($"{request.RequestUri!.GetLeftPart(UriPartial.Path)} refused the request ({(int)response.StatusCode}): {hint}", (int)response.StatusCode);
            }
            JsonNode? json = null;
            if (text.Length > 0)
            {
                try
                {
                    json = JsonNode.Parse(text);
                }
                catch (System.Text.Json.JsonException)
                {
                    json = JsonValue.Create(text);
                }
            }
            if (!response.IsSuccessStatusCode)
            {
                throw new ApiException(ErrorMessage(json, text, response), (int)response.StatusCode);
            }
            return json;
        }
    }

    // Control-plane errors are RFC 9457 problem details; the worker's are {"error": …}.
    private static string ErrorMessage(JsonNode? json, string text, HttpResponseMessage response)
    {
        if (json is JsonObject obj)
        {
            foreach (var key in new[] { "detail", "message", "error", "title" })
            {
                if (obj[key] is JsonValue value && value.TryGetValue<string>(out var message) && message.Length > 0)
                {
                    return message;
                }
            }
        }
        return text.Length > 0 ? text[..Math.Min(300, text.Length)] : $"{(int)response.StatusCode} {response.ReasonPhrase}";
    }

    private ApiException Unreachable(bool worker, Exception error)
    {
        var what = worker ? $"the worker at {Settings.WorkerUrl}" : $"the API at {Settings.ApiUrl}";
        var hint = Settings.IsLocal
            ? "start the local stack with `make run` (or `lepton dev`) and try again"
            : worker ? "check --worker-url / LEPTON_WORKER_URL and your network" : "check --api-url / LEPTON_API_URL and your network";
        return new ApiException($"{what} is not reachable ({error.GetType().Name}): {hint}", 0);
    }

    private static string Segment(string value) => Uri.EscapeDataString(value);

    private static JsonObject Object(JsonNode? node) => node as JsonObject ?? [];
}
