// One user-assigned managed identity for the whole system: the Functions host, Lepton's code in the
// Functions app and the GPU workers all authenticate as it, so no key or SAS ever reaches an app
// setting. Its role assignments live in roles.bicep, each scoped to the one resource it covers.

@description('Azure region for the identity.')
param location string

@description('Name of the user-assigned managed identity.')
param name string

@description('Tags applied to every resource.')
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
