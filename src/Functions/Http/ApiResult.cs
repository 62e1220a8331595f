using System.Text.Json;
using Lepton.Shared;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;

namespace Lepton.Functions.Http;

/// <summary>
/// A JSON response of the control API, written with <see cref="LeptonJson.Options"/> (snake_case,
/// NaN as null) whatever the host's MVC settings. It is both an <see cref="IActionResult"/> (the
/// Functions app's ASP.NET Core integration executes it) and an <see cref="IResult"/> (a minimal-API
/// host executes it), so every host answers byte for byte the same.
/// </summary>
public sealed class ApiResult : IActionResult, IResult
{
    private ApiResult(int status, object? body, string contentType, JsonSerializerOptions options, IReadOnlyDictionary<string, string>? headers)
    {
        StatusCode = status;
        Body = body;
        ContentType = contentType;
        Options = options;
        Headers = headers ?? new Dictionary<string, string>();
    }

    public int StatusCode { get; }

    public object? Body { get; }

    public string ContentType { get; }

    public IReadOnlyDictionary<string, string> Headers { get; }

    private JsonSerializerOptions Options { get; }

    public static ApiResult Json(object body, int status = StatusCodes.Status200OK, IReadOnlyDictionary<string, string>? headers = null) =>
        new(status, body, "application/json", LeptonJson.Options, headers);

    /// <summary>An RFC 9457 problem document (its member names are the RFC's, not snake_case).</summary>
    public static ApiResult Problem(ProblemDetails problem, IReadOnlyDictionary<string, string>? headers = null) =>
        new(problem.Status ?? StatusCodes.Status500InternalServerError, problem, "application/problem+json", ProblemOptions, headers);

    private static readonly JsonSerializerOptions ProblemOptions = new(JsonSerializerDefaults.Web)
    {
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public Task ExecuteResultAsync(ActionContext context) => ExecuteAsync(context.HttpContext);

    public async Task ExecuteAsync(HttpContext httpContext)
    {
        var response = httpContext.Response;
        response.StatusCode = StatusCode;
        foreach (var (name, value) in Headers)
        {
            response.Headers[name] = value;
        }
        response.ContentType = ContentType;
        await JsonSerializer.SerializeAsync(response.Body, Body, Body?.GetType() ?? typeof(object), Options, httpContext.RequestAborted);
    }
}
