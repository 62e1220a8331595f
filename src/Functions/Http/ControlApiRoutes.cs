namespace Lepton.Functions.Http;

/// <summary>
/// The control API's routes (under <c>/api</c>) and function names, in one place: the Functions
/// app's HTTP triggers and any other host (<see cref="ControlApiEndpoints"/>) serve exactly these.
/// </summary>
public static class ControlApiRoutes
{
    public const string Prefix = "api";

    public const string Health = "health";
    public const string Models = "models";
    public const string Model = "models/{model}";
    public const string Routes = "models/{model}/routes";
    public const string Version = "models/{model}/versions/{version}";
    public const string Start = "models/{model}/versions/{version}/lifecycle";
    public const string Approve = "models/{model}/versions/{version}/approve";
    public const string Promote = "models/{model}/versions/{version}/promote";
    public const string Rollback = "models/{model}/versions/{version}/rollback";
    public const string Abort = "models/{model}/versions/{version}/abort";
    public const string History = "models/{model}/versions/{version}/history";
    public const string ModelHistory = "models/{model}/history";

    /// <summary>Where a Durable HTTP start's status links point (the Functions host serves them in Azure).</summary>
    public const string DurableInstances = "runtime/webhooks/durabletask/instances";
}
