using Lepton.GpuWorker;
using Lepton.Shared;

// The composition root: build the host, map the endpoints, run. Settings come from the
// environment (LEPTON_WORKER_*, AzureWebJobsStorage…); a bad one stops the worker naming it.
WorkerHostExtensions.TuneRuntimeForCpus();
try
{
    // The slim builder: no host filtering or HTTPS plumbing on every request; Kestrel, routing,
    // configuration from the environment and console logging remain.
    var builder = WebApplication.CreateSlimBuilder(args);
    builder.AddLeptonWorker();
    var app = builder.Build();
    app.MapLeptonWorker();
    await app.RunAsync();
    return 0;
}
catch (ConfigurationException error)
{
    await Console.Error.WriteLineAsync($"lepton worker: {error.Message}");
    return 2;
}
catch (Microsoft.Extensions.Options.OptionsValidationException error) when (error.InnerException is ConfigurationException)
{
    await Console.Error.WriteLineAsync($"lepton worker: {error.InnerException.Message}");
    return 2;
}
