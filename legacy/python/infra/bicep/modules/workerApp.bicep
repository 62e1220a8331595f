// The GPU inference worker (`python -m lepton.gpuworker`, Open Inference Protocol on port 8000) as
// a Container App on the environment's serverless GPU profile. It pulls its image and reaches
// storage and Application Insights with the shared managed identity; Kubernetes-style probes hit
// the worker's own health routes; the HTTP rule scales replicas on concurrent requests. Ingress is
// environment-internal unless an IP allowlist is given: the worker is never open to the internet.

@description('Azure region for the app.')
param location string

@description('Name of the Container App.')
param name string

@description('Resource ID of the Container Apps environment.')
param environmentId string

@description('Workload profile the worker runs on (the GPU profile).')
param workloadProfileName string

@description('Worker image, e.g. <registry>.azurecr.io/lepton-worker:<tag>.')
param image string

@description('Login server of the registry the image is pulled from.')
param registryLoginServer string

@description('Resource ID of the user-assigned managed identity.')
param identityId string

@description('Client ID of the user-assigned managed identity.')
param identityClientId string

@description('Storage account name.')
param storageAccountName string

@description('Blob service endpoint.')
param blobEndpoint string

@description('Queue service endpoint.')
param queueEndpoint string

@description('Table service endpoint.')
param tableEndpoint string

@description('Application Insights connection string.')
param appInsightsConnectionString string

@description('Largest model file a worker loads, in bytes (LEPTON_MAX_MODEL_BYTES).')
@minValue(1)
param maxModelBytes int

@description('Port the worker listens on (LEPTON_WORKER_PORT).')
param port int = 8000

@description('vCPUs per replica; a serverless GPU gets a fixed share (8 for T4, 24 for A100).')
@allowed([
  8
  24
])
param cpu int = 8

@description('Memory per replica (56Gi for T4, 220Gi for A100).')
@allowed([
  '56Gi'
  '220Gi'
])
param memory string = '56Gi'

@description('Fewest replicas; keep at least 1 so a canary always finds a warm worker.')
@minValue(0)
@maxValue(300)
param minReplicas int = 1

@description('Most replicas.')
@minValue(1)
@maxValue(300)
param maxReplicas int = 4

@description('Concurrent requests per replica before the HTTP rule adds a replica.')
@minValue(1)
param concurrentRequestsPerReplica int = 64

@description('CIDR ranges allowed to call the worker from outside the environment; empty keeps ingress internal.')
param allowedIpRanges array = []

@description('Extra environment variables for the worker, as [{ name: ..., value: ... }].')
param extraEnv array = []

@description('Tags applied to every resource.')
param tags object

// Public ingress only together with an allowlist, so a forgotten parameter cannot open the worker.
var exposeOutsideEnvironment = !empty(allowedIpRanges)

var baseEnv = [
  {
    // The worker defaults to loopback (safe on a laptop); in the container, ingress and the
    // probes reach it on the pod's address, so it must listen on every interface.
    name: 'LEPTON_WORKER_HOST'
    value: '0.0.0.0'
  }
  {
    name: 'LEPTON_WORKER_PORT'
    value: string(port)
  }
  {
    name: 'AzureWebJobsStorage__accountName'
    value: storageAccountName
  }
  {
    name: 'AzureWebJobsStorage__credential'
    value: 'managedidentity'
  }
  {
    name: 'AzureWebJobsStorage__clientId'
    value: identityClientId
  }
  {
    name: 'AzureWebJobsStorage__blobServiceUri'
    value: blobEndpoint
  }
  {
    name: 'AzureWebJobsStorage__queueServiceUri'
    value: queueEndpoint
  }
  {
    name: 'AzureWebJobsStorage__tableServiceUri'
    value: tableEndpoint
  }
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: appInsightsConnectionString
  }
  {
    name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
    value: 'ClientId=${identityClientId};Authorization=AAD'
  }
  {
    // azure-identity's ManagedIdentityCredential and DefaultAzureCredential read this one.
    name: 'AZURE_CLIENT_ID'
    value: identityClientId
  }
  {
    name: 'LEPTON_MAX_MODEL_BYTES'
    value: string(maxModelBytes)
  }
]

resource worker 'Microsoft.App/containerApps@2024-03-01' = {
  name: name
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    environmentId: environmentId
    workloadProfileName: workloadProfileName
    configuration: {
      // One revision at a time: Lepton shifts traffic between model versions inside the worker.
      activeRevisionsMode: 'Single'
      ingress: {
        external: exposeOutsideEnvironment
        targetPort: port
        transport: 'http'
        allowInsecure: false
        ipSecurityRestrictions: [
          for (range, i) in allowedIpRanges: {
            name: 'allow-${i}'
            description: 'Caller allowed by the allowedIpRanges parameter'
            ipAddressRange: range
            action: 'Allow'
          }
        ]
      }
      registries: [
        {
          server: registryLoginServer
          identity: identityId
        }
      ]
    }
    template: {
      // Time for in-flight batches to finish when a replica is drained.
      terminationGracePeriodSeconds: 60
      containers: [
        {
          name: 'worker'
          image: image
          resources: {
            cpu: cpu
            memory: memory
          }
          env: concat(baseEnv, extraEnv)
          probes: [
            {
              // CUDA initialisation can take a while; liveness starts counting only after this.
              // Container Apps caps failureThreshold at 10 and initialDelaySeconds at 60.
              type: 'Startup'
              httpGet: {
                path: '/v2/health/live'
                port: port
              }
              initialDelaySeconds: 10
              periodSeconds: 15
              failureThreshold: 10
            }
            {
              type: 'Liveness'
              httpGet: {
                path: '/v2/health/live'
                port: port
              }
              periodSeconds: 10
              failureThreshold: 3
            }
            {
              type: 'Readiness'
              httpGet: {
                path: '/v2/health/ready'
                port: port
              }
              periodSeconds: 5
              failureThreshold: 3
            }
          ]
        }
      ]
      scale: {
        minReplicas: minReplicas
        maxReplicas: maxReplicas
        rules: [
          {
            name: 'http-concurrency'
            http: {
              metadata: {
                concurrentRequests: string(concurrentRequestsPerReplica)
              }
            }
          }
        ]
      }
    }
  }
}

output id string = worker.id
output name string = worker.name
output fqdn string = worker.properties.configuration.ingress.fqdn
output url string = 'https://${worker.properties.configuration.ingress.fqdn}'
