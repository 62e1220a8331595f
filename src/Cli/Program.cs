using System.CommandLine;
using Lepton.Cli.Commands;

var root = new RootCommand(
    "lepton: run many versions of an ONNX model side by side, and move each new one through "
    + "validate → evaluate → canary → promote (or roll back).");
root.Subcommands.Add(DevCommand.Create());
root.Subcommands.Add(PushCommand.Create());
root.Subcommands.Add(InspectCommands.Status());
root.Subcommands.Add(InspectCommands.Watch());
foreach (var command in OperatorCommands.Create())
{
    root.Subcommands.Add(command);
}
root.Subcommands.Add(InspectCommands.Routes());
root.Subcommands.Add(InspectCommands.History());
root.Subcommands.Add(OperatorCommands.Infer());
root.Subcommands.Add(DemoCommand.Create());
return await root.Parse(args).InvokeAsync();
