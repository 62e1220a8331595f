using Azure.Core.Serialization;
using Lepton.Functions;
using Lepton.Functions.Http;
using Lepton.Shared;
using Microsoft.Azure.Functions.Worker;
using Microsoft.Azure.Functions.Worker.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

// The Functions app's composition root: the ASP.NET Core integration for HTTP, the one error
// mapping, Lepton's JSON for Durable payloads (they carry NaN), the lifecycle and telemetry.
var builder = FunctionsApplication.CreateBuilder(args);
builder.ConfigureFunctionsWebApplication();
builder.UseMiddleware<ProblemDetailsMiddleware>();
builder.Services.Configure<WorkerOptions>(options => options.Serializer = new JsonObjectSerializer(LeptonJson.Options));
// The host checks function keys but does not pass the key's name to an ASP.NET Core worker.
builder.Services.AddLeptonLifecycle(unidentifiedActor: "function-key");
builder.Services.AddLeptonTelemetry(builder.Configuration, "lepton-functions");
builder.Build().Run();
