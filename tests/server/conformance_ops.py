"""The OpenAI operations the local backend implements: what the conformance test generates requests for and what
scripts/vendor_openapi.py keeps of OpenAI's spec (tests/data/openai-openapi-subset.json)."""
IMPLEMENTED = ["createChatCompletion", "listFiles", "createFile", "deleteFile", "retrieveFile", "downloadFile",
               "createFineTuningJob", "listPaginatedFineTuningJobs", "retrieveFineTuningJob", "cancelFineTuningJob",
               "listFineTuningJobCheckpoints", "listFineTuningEvents", "pauseFineTuningJob", "resumeFineTuningJob",
               "listModels", "retrieveModel", "deleteModel", "createUpload", "addUploadPart", "completeUpload",
               "cancelUpload", "runGrader", "validateGrader"]
