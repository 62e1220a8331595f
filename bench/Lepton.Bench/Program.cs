using Lepton.Bench;

// `dotnet run -c Release --project bench/Lepton.Bench -- [load|micro|canary|soak|serve|raw] [--quick]`.
// `serve` and `raw` are the pinned child processes `load` starts; `make bench` runs load, then micro.
var command = args.Length > 0 && !args[0].StartsWith('-') ? args[0] : "load";
var rest = args.SkipWhile(a => a == command).ToArray();
return command switch
{
    "serve" => await BenchServer.RunAsync(rest),
    "raw" => RawOrt.Run(rest),
    "micro" => Micro.Run(rest),
    "load" => await LoadBenchmark.RunAsync(rest),
    "idle" => await LoadBenchmark.IdleAsync(),
    "profile" => await LoadBenchmark.ProfileAsync(rest),
    "plane" => await DataPlaneBenchmarks.LoopAsync(rest),
    "canary" => CanaryPower.Run(rest),
    "soak" => await Soak.RunAsync(rest),
    "fast-rollback" => await FastRollback.RunAsync(rest),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: Lepton.Bench [load|micro|canary|soak] [--quick]");
    return 2;
}
