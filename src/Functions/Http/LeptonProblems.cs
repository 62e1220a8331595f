using System.Globalization;
using Lepton.Shared;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Logging;

namespace Lepton.Functions.Http;

/// <summary>
/// The one mapping from errors to HTTP responses for the control API: a
/// <see cref="LeptonException"/> becomes an RFC 9457 problem with its status
/// (<see cref="LeptonException.StatusCodeFor"/>), its message as <c>detail</c> and its stable
/// <c>code</c>; anything else is a 500 whose detail hides internals (they go to the log).
/// </summary>
public static class LeptonProblems
{
    public const string InternalDetail = "internal error; the details are in the server log";

    public static ApiResult For(Exception error, string? instance, ILogger logger)
    {
        if (error is LeptonException lepton)
        {
            var headers = lepton is NotReadyException { RetryAfter: { } after }
                ? new Dictionary<string, string> { ["Retry-After"] = Math.Ceiling(after.TotalSeconds).ToString(CultureInfo.InvariantCulture) }
                : null;
            return ApiResult.Problem(Problem(lepton.StatusCode, lepton.Message, lepton.Code, instance), headers);
        }
        logger.LogError(error, "Unhandled error in a control API route {Route}", instance);
        return ApiResult.Problem(Problem(StatusCodes.Status500InternalServerError, InternalDetail, "internal", instance));
    }

    private static ProblemDetails Problem(int status, string detail, string code, string? instance)
    {
        var problem = new ProblemDetails
        {
            Type = "about:blank",
            Title = Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(status),
            Status = status,
            Detail = detail,
            Instance = instance,
        };
        problem.Extensions["code"] = code;
        return problem;
    }
}
