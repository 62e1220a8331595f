using Microsoft.Azure.Functions.Worker;
using Microsoft.Azure.Functions.Worker.Middleware;
using Microsoft.Extensions.Logging;

namespace Lepton.Functions.Http;

/// <summary>
/// The Functions app's error mapping for HTTP triggers: an exception from a control API function
/// becomes its <see cref="LeptonProblems"/> response, set as the invocation's result, which the
/// ASP.NET Core integration then writes. Other triggers' exceptions pass through (the runtime's
/// retry and poison handling own them).
/// </summary>
public sealed class ProblemDetailsMiddleware(ILogger<ProblemDetailsMiddleware> logger) : IFunctionsWorkerMiddleware
{
    public async Task Invoke(FunctionContext context, FunctionExecutionDelegate next)
    {
        try
        {
            await next(context);
        }
        catch (Exception error) when (IsHttp(context))
        {
            var request = context.GetHttpContext()?.Request;
            context.GetInvocationResult().Value = LeptonProblems.For(Unwrap(error), request?.Path.Value, logger);
        }
    }

    private static bool IsHttp(FunctionContext context) =>
        context.FunctionDefinition.InputBindings.Values.Any(b => string.Equals(b.Type, "httpTrigger", StringComparison.OrdinalIgnoreCase));

    // The worker may wrap the function's own exception.
    private static Exception Unwrap(Exception error) => error switch
    {
        AggregateException { InnerExceptions.Count: 1 } aggregate => aggregate.InnerExceptions[0],
        { InnerException: Shared.LeptonException inner } => inner,
        _ => error,
    };
}
