using Lepton.GpuWorker;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;

namespace Lepton.Bench;

/// <summary>
/// The benchmark's worker process: the worker exactly as <c>Program.cs</c> builds it, plus a no-op
/// route (<c>POST /noop</c>) that reads the body and answers a constant small JSON through the same
/// Kestrel stack, so "served ÷ no-op" isolates what Lepton adds per request.
/// </summary>
public static class BenchServer
{
    private static readonly byte[] NoopAnswer = """{"model_name":"noop","model_version":"0.0.0","outputs":[]}"""u8.ToArray();

    public static async Task<int> RunAsync(string[] args)
    {
        WorkerHostExtensions.TuneRuntimeForCpus();
        var builder = WebApplication.CreateSlimBuilder(args);
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.AddLeptonWorker();
        var app = builder.Build();
        app.MapLeptonWorker();
        app.MapPost("/noop", async context =>
        {
            var reader = context.Request.BodyReader;
            while (true)
            {
                var read = await reader.ReadAsync();
                reader.AdvanceTo(read.Buffer.End);
                if (read.IsCompleted)
                {
                    break;
                }
            }
            context.Response.ContentType = "application/json";
            context.Response.ContentLength = NoopAnswer.Length;
            await context.Response.Body.WriteAsync(NoopAnswer);
        });
        await app.RunAsync();
        return 0;
    }
}
